//! What the checker knows of a value beyond its type ([`super::types`]): the fields of an object
//! the text writes out (`compute: { total: …, rows: … }`), the rows of a `select` (objects with
//! exactly their entity's declared fields), an aggregate's columns, a `for_each`'s records, lists
//! of those, and what `first`, `last`, `filter`, `find`, `[i]`, a `for_each` item or the item of
//! an `item -> …` condition take from them.
//!
//! Reading a field such a value cannot have — `row.nme`, `totals.revnue`, a template's
//! `{{summary.totl}}` — is a build error instead of a failed run. A binding that may be `null`
//! (its step skipped by `when:`, or failed under `on_fail: continue`) fails such a read at run
//! time as well, so the rule holds for it too; `?.` and the first argument of `default(…)`,
//! which read a missing field as nothing, are never refused.

use super::job::JobCx;
use super::suggest::hint_or_list;
use crate::ast::{self, ExprKind, StepValue};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Shape {
    /// An object with exactly these fields.
    Object(Vec<(String, Shape)>),
    /// A row of the entity of this name: exactly its declared fields.
    Row(String),
    /// A list whose items have this shape.
    List(Box<Shape>),
    /// Nothing is known.
    Unknown,
}

impl Shape {
    /// The shape of an item of this list (`Unknown` for anything else).
    pub(super) fn item(&self) -> Shape {
        match self {
            Shape::List(item) => (**item).clone(),
            _ => Shape::Unknown,
        }
    }

    /// "a row of `Product`", "a list of `Product` rows", … for messages; `None` when unknown.
    pub(super) fn describe(&self) -> Option<String> {
        Some(match self {
            Shape::Object(_) => "an object".to_string(),
            Shape::Row(entity) => format!("a row of `{entity}`"),
            Shape::List(item) => match &**item {
                Shape::Row(entity) => format!("a list of `{entity}` rows"),
                Shape::Object(_) => "a list of objects".to_string(),
                _ => "a list".to_string(),
            },
            Shape::Unknown => return None,
        })
    }
}

/// What reading a field of a value of a known shape finds.
pub(super) enum Read {
    /// The field is there, or nothing is known: the shape of its value.
    Found(Shape),
    /// The value cannot have the field: the message and its hint.
    Missing(String, String),
}

impl JobCx<'_, '_> {
    /// The shape of the value of a name in scope.
    pub(super) fn binding_shape(&self, name: &str) -> Shape {
        if !self.scope.iter().any(|n| n == name) {
            return Shape::Unknown;
        }
        self.shapes
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map_or(Shape::Unknown, |(_, s)| s.clone())
    }

    /// Brings a name into scope with what is known of its value (a `for_each` item, the item
    /// of an `item -> …` condition, a binding); [`JobCx::unbind`] takes the latest one out.
    pub(super) fn bind(&mut self, name: &str, shape: Shape, item: bool) {
        self.scope.push(name.to_string());
        self.shapes.push((name.to_string(), shape));
        if item {
            self.items.push(name.to_string());
        }
    }

    pub(super) fn unbind(&mut self, item: bool) {
        self.scope.pop();
        self.shapes.pop();
        if item {
            self.items.pop();
        }
    }

    /// The shape of an expression's value.
    pub(super) fn shape_of(&self, e: &ast::Expr) -> Shape {
        match &e.kind {
            ExprKind::Ident(name) => self.binding_shape(name),
            ExprKind::Object(entries) => Shape::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.node.clone(), self.shape_of(v)))
                    .collect(),
            ),
            ExprKind::List(items) => {
                let mut shapes = items.iter().map(|i| self.shape_of(i));
                let first = shapes.next().unwrap_or(Shape::Unknown);
                let same = shapes.all(|s| s == first);
                Shape::List(Box::new(if same { first } else { Shape::Unknown }))
            }
            ExprKind::Field(base, field) | ExprKind::OptField(base, field) => {
                match self.shape_of(base) {
                    Shape::Object(fields) => fields
                        .into_iter()
                        .find(|(k, _)| *k == field.node)
                        .map_or(Shape::Unknown, |(_, s)| s),
                    _ => Shape::Unknown,
                }
            }
            ExprKind::Index(base, _) => self.shape_of(base).item(),
            ExprKind::Cond(_, a, b) => {
                let (a, b) = (self.shape_of(a), self.shape_of(b));
                if a == b {
                    a
                } else {
                    Shape::Unknown
                }
            }
            ExprKind::Call(name, args) => match (name.node.as_str(), args.first()) {
                ("first" | "last" | "find", Some(list)) => self.shape_of(list).item(),
                ("filter", Some(list)) => match self.shape_of(list) {
                    list @ Shape::List(_) => list,
                    _ => Shape::Unknown,
                },
                _ => Shape::Unknown,
            },
            _ => Shape::Unknown,
        }
    }

    /// The shape of what a step binds with `as:`, known for a `select` (its entity's rows), an
    /// aggregate (its columns, and with `group by` a list of objects of the groups' fields and
    /// the columns), a `compute:` and a `for_each` (one `{item, ok, value, error}` per item).
    /// Called with the scope the step was checked in.
    pub(super) fn step_shape(&self, step: &ast::Step) -> Shape {
        let field = |key: &str| {
            step.fields
                .iter()
                .find(|f| f.key.node == key)
                .map(|f| &f.value)
        };
        if let Some(items) = field("for_each") {
            let item = match items {
                StepValue::Expr(e) => self.shape_of(e).item(),
                _ => Shape::Unknown,
            };
            let record = ["item", "ok", "value", "error"]
                .into_iter()
                .map(|k| {
                    let shape = if k == "item" {
                        item.clone()
                    } else {
                        Shape::Unknown
                    };
                    (k.to_string(), shape)
                })
                .collect();
            return Shape::List(Box::new(Shape::Object(record)));
        }
        match (field("query"), field("compute")) {
            (Some(StepValue::Query(q)), _) => {
                let Some(entity) = self.decls.entity(&q.entity.node) else {
                    return Shape::Unknown;
                };
                if let Some(agg) = &q.aggregate {
                    let columns = agg
                        .columns
                        .iter()
                        .map(|(name, _)| (name.node.clone(), Shape::Unknown));
                    if agg.group_by.is_empty() {
                        return Shape::Object(columns.collect());
                    }
                    let groups = agg
                        .group_by
                        .iter()
                        .map(|g| (g.node.clone(), Shape::Unknown));
                    return Shape::List(Box::new(Shape::Object(groups.chain(columns).collect())));
                }
                // A platform table's rows are the host's to shape.
                if q.count || entity.builtin.is_some() {
                    return Shape::Unknown;
                }
                Shape::List(Box::new(Shape::Row(entity.name().to_string())))
            }
            (_, Some(StepValue::Expr(e))) => self.shape_of(e),
            _ => Shape::Unknown,
        }
    }

    /// Reading `field` of a value of `shape`, which reads as `text` in messages.
    pub(super) fn read(&self, shape: &Shape, text: &str, field: &str) -> Read {
        match shape {
            Shape::Object(fields) => match fields.iter().find(|(k, _)| k == field) {
                Some((_, s)) => Read::Found(s.clone()),
                None => {
                    let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
                    Read::Missing(
                        format!("`{text}` has no field `{field}`"),
                        hint_or_list(field, "its fields", &keys),
                    )
                }
            },
            Shape::Row(name) => match self.decls.entity(name) {
                Some(entity) if entity.field(field).is_none() => Read::Missing(
                    format!("`{text}` is a row of `{name}`, which has no field `{field}`"),
                    hint_or_list(field, "its fields", &entity.field_names()),
                ),
                _ => Read::Found(Shape::Unknown),
            },
            Shape::List(_) if field == "length" => Read::Found(Shape::Unknown),
            Shape::List(item) => {
                let of_items = matches!(self.read(item, "", field), Read::Found(_))
                    && **item != Shape::Unknown;
                let what = shape.describe().unwrap_or_default();
                let hint = if of_items {
                    format!(
                        "`pluck({text}, \"{field}\")` is every item's `{field}`, \
                         `first({text}).{field}` the first one's"
                    )
                } else {
                    format!(
                        "a list has no fields (but `length`): take an item first, like \
                         `first({text})` or `{text}[0]`"
                    )
                };
                Read::Missing(
                    format!("`{text}` is {what}, not an object: it has no field `{field}`"),
                    hint,
                )
            }
            Shape::Unknown => Read::Found(Shape::Unknown),
        }
    }

    /// How a path reads in a message (`rows[0].customer`), as written for anything else.
    pub(super) fn path_text(&self, e: &ast::Expr) -> String {
        match &e.kind {
            ExprKind::Ident(name) => name.clone(),
            ExprKind::Field(base, field) => format!("{}.{}", self.path_text(base), field.node),
            ExprKind::OptField(base, field) => format!("{}?.{}", self.path_text(base), field.node),
            ExprKind::Index(base, index) => match index.kind {
                ExprKind::Int(i) => format!("{}[{i}]", self.path_text(base)),
                _ => format!("{}[…]", self.path_text(base)),
            },
            _ => self.cx.text(e.span).to_string(),
        }
    }

    /// `base.field` in an expression: a field the value cannot have is an error at the field
    /// (not inside the first argument of `default(…)`, which reads a missing one as nothing).
    pub(super) fn check_read(&mut self, base: &ast::Expr, field: &ast::Ident) {
        if self.lenient > 0 {
            return;
        }
        let shape = self.shape_of(base);
        let text = self.path_text(base);
        if let Read::Missing(message, hint) = self.read(&shape, &text, &field.node) {
            self.cx.error_hint(field.span, message, hint);
        }
    }
}
