//! Expressions: names in scope, built-in calls, `{{path}}` interpolation, and the entity-bound
//! forms — `where` filters, `set` assignments, `insert` values and `order by` — whose field names
//! and literal types are checked against the entity's declaration.

use super::decls::{EntityInfo, FieldInfo};
use super::job::JobCx;
use super::shape::{Read, Shape};
use super::suggest::{did_you_mean, hint_or_list};
use super::types::{self, Ty};
use crate::ast::{self, BinaryOp, ExprKind, Span};
use codeai_ir::{
    self as ir, ArithOp, Assignment, Builtin, CompareOp, FieldType, Filter, OrderBy, Term, TermFunc,
};

/// Built-ins that read the clock (the `clock` capability).
const CLOCK_BUILTINS: &[Builtin] = &[
    Builtin::Now,
    Builtin::Today,
    Builtin::Yesterday,
    Builtin::Tomorrow,
    Builtin::ThisWeek,
    Builtin::LastWeek,
    Builtin::ThisMonth,
    Builtin::LastMonth,
    Builtin::ThisYear,
    Builtin::LastYear,
    Builtin::DaysAgo,
    Builtin::HoursAgo,
    Builtin::MinutesAgo,
    Builtin::FormatDate,
];

/// Built-ins that read per-job state (the `state` capability).
const STATE_BUILTINS: &[Builtin] = &[
    Builtin::LastSyncTimestamp,
    Builtin::LastRunAt,
    Builtin::StateGet,
];

/// The type of one side of a field comparison: a field type (numbers computed in a filter are
/// `Float`), or unknown (a binding, a string that may be a timestamp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TermKind {
    Field(FieldType),
    Unknown,
}

impl TermKind {
    fn describe(self) -> &'static str {
        match self {
            TermKind::Field(FieldType::Int | FieldType::Float) => "a number",
            TermKind::Field(ty) => type_name(ty),
            TermKind::Unknown => "a value",
        }
    }
}

/// The shape of a literal, for type checks against entity fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lit {
    Null,
    Bool,
    Number,
    Str,
    Duration,
    List,
}

fn literal(e: &ast::Expr) -> Option<Lit> {
    Some(match &e.kind {
        ExprKind::Null => Lit::Null,
        ExprKind::Bool(_) => Lit::Bool,
        ExprKind::Int(_) | ExprKind::Float(_) => Lit::Number,
        ExprKind::Str(_) => Lit::Str,
        ExprKind::Duration(_) => Lit::Duration,
        ExprKind::List(_) => Lit::List,
        ExprKind::Unary(ast::UnaryOp::Neg, inner)
            if matches!(inner.kind, ExprKind::Int(_) | ExprKind::Float(_)) =>
        {
            Lit::Number
        }
        _ => return None,
    })
}

fn type_name(ty: FieldType) -> &'static str {
    match ty {
        FieldType::String => "a string",
        FieldType::Int => "an int",
        FieldType::Float => "a float",
        FieldType::Bool => "a bool",
        FieldType::Datetime => "a datetime",
        FieldType::Date => "a date",
        FieldType::Uuid => "a uuid",
        FieldType::Json => "json",
    }
}

fn lit_name(lit: Lit) -> &'static str {
    match lit {
        Lit::Null => "null",
        Lit::Bool => "a bool",
        Lit::Number => "a number",
        Lit::Str => "a string",
        Lit::Duration => "a duration",
        Lit::List => "a list",
    }
}

/// How to turn a value of type `t` into a condition.
fn condition_hint(t: Ty, text: &str) -> String {
    match t {
        Ty::Number => format!("compare it, like `{text} > 0`"),
        Ty::Str => format!("compare it, like `{text} = \"…\"`"),
        Ty::List => format!("test its size, like `count({text}) > 0`"),
        _ => "write a comparison, like `count(rows) > 0`, or combine them with `and` / `or`"
            .to_string(),
    }
}

fn arity(min: usize, max: usize) -> String {
    let n = |k: usize| {
        if k == 1 {
            "1 argument".to_string()
        } else {
            format!("{k} arguments")
        }
    };
    match (min, max) {
        (0, 0) => "no arguments".to_string(),
        (a, b) if a == b => n(a),
        (a, usize::MAX) => format!("at least {}", n(a)),
        (a, b) if b == a + 1 => format!("{a} or {}", n(b)),
        (a, b) => format!("{a} to {}", n(b)),
    }
}

impl JobCx<'_, '_> {
    /// Lowers an expression evaluated by the guest, checking names and built-in calls.
    pub(super) fn expr(&mut self, e: &ast::Expr) -> ir::Expr {
        match &e.kind {
            ExprKind::Null => ir::Expr::Null,
            ExprKind::Bool(b) => ir::Expr::Bool(*b),
            ExprKind::Int(i) => ir::Expr::Int(*i),
            ExprKind::Float(f) => ir::Expr::Float(*f),
            ExprKind::Str(s) => self.string(s, e.span),
            ExprKind::Duration(d) => ir::Expr::Duration(d.millis),
            ExprKind::Ident(name) => self.var(name, e.span, None, None),
            ExprKind::Field(base, field) => {
                if matches!(&base.kind, ExprKind::Ident(b) if b == "input") {
                    self.input_name(&field.node, field.span);
                }
                let lowered = match &base.kind {
                    ExprKind::Ident(name) => self.var(name, base.span, None, Some(&field.node)),
                    _ => self.expr(base),
                };
                self.check_read(base, field);
                ir::Expr::Field(Box::new(lowered), field.node.clone())
            }
            ExprKind::OptField(base, field) => {
                ir::Expr::OptField(Box::new(self.expr(base)), field.node.clone())
            }
            ExprKind::Index(base, index) => {
                ir::Expr::Index(Box::new(self.expr(base)), Box::new(self.expr(index)))
            }
            ExprKind::List(items) => ir::Expr::List(items.iter().map(|i| self.expr(i)).collect()),
            ExprKind::Object(entries) => ir::Expr::Object(self.object(entries)),
            ExprKind::Unary(op, inner) => {
                if *op == ast::UnaryOp::Not {
                    self.boolean(inner, "`not`");
                }
                let t = types::ty(inner);
                if *op == ast::UnaryOp::Neg && !matches!(t, Ty::Number | Ty::Unknown) {
                    self.cx.error_hint(
                        inner.span,
                        format!("cannot negate {}", t.describe()),
                        "`-` takes a number or a duration",
                    );
                }
                let op = match op {
                    ast::UnaryOp::Not => ir::UnaryOp::Not,
                    ast::UnaryOp::Neg => ir::UnaryOp::Neg,
                };
                ir::Expr::Unary(op, Box::new(self.expr(inner)))
            }
            // `x in list` outside a filter is `contains(list, x)`.
            ExprKind::Binary(BinaryOp::In, item, list) => {
                let item = self.expr(item);
                let list = self.expr(list);
                ir::Expr::Call(Builtin::Contains, vec![list, item])
            }
            ExprKind::Binary(BinaryOp::Like, left, right) => {
                self.expr(left);
                self.expr(right);
                self.cx.error_hint(
                    e.span,
                    "`like` can only be used in a `where` filter",
                    "use `contains(text, part)` to test for a substring",
                );
                ir::Expr::Null
            }
            ExprKind::Binary(op, left, right) => {
                self.check_operands(*op, left, right);
                let op = match op {
                    BinaryOp::Add => ir::BinaryOp::Add,
                    BinaryOp::Sub => ir::BinaryOp::Sub,
                    BinaryOp::Mul => ir::BinaryOp::Mul,
                    BinaryOp::Div => ir::BinaryOp::Div,
                    BinaryOp::Rem => ir::BinaryOp::Rem,
                    BinaryOp::Eq => ir::BinaryOp::Eq,
                    BinaryOp::Ne => ir::BinaryOp::Ne,
                    BinaryOp::Lt => ir::BinaryOp::Lt,
                    BinaryOp::Le => ir::BinaryOp::Le,
                    BinaryOp::Gt => ir::BinaryOp::Gt,
                    BinaryOp::Ge => ir::BinaryOp::Ge,
                    BinaryOp::And => ir::BinaryOp::And,
                    BinaryOp::Or => ir::BinaryOp::Or,
                    BinaryOp::Coalesce | BinaryOp::In | BinaryOp::Like => ir::BinaryOp::Coalesce,
                };
                if let ir::BinaryOp::And | ir::BinaryOp::Or = op {
                    let what = if op == ir::BinaryOp::And {
                        "`and`"
                    } else {
                        "`or`"
                    };
                    self.boolean(left, what);
                    self.boolean(right, what);
                }
                ir::Expr::Binary(op, Box::new(self.expr(left)), Box::new(self.expr(right)))
            }
            ExprKind::Cond(c, a, b) => ir::Expr::Cond(
                Box::new(self.condition(c, "`? :`").expr),
                Box::new(self.expr(a)),
                Box::new(self.expr(b)),
            ),
            ExprKind::Call(name, args) => self.call(name, args, e.span),
            ExprKind::Lambda(param, body) => {
                self.cx.error_hint(
                    e.span,
                    format!(
                        "`{} -> …` is a condition on each item of a list: only `filter` and \
                         `find` take one",
                        param.node
                    ),
                    format!(
                        "`filter(list, {0} -> …)` keeps the items for which it holds, \
                         `find(list, {0} -> …)` is the first of them (or null)",
                        param.node
                    ),
                );
                self.bind(&param.node, Shape::Unknown, true);
                self.expr(body);
                self.unbind(true);
                ir::Expr::Null
            }
        }
    }

    /// Reports an operand of `what` whose type is known and not a boolean.
    fn boolean(&mut self, e: &ast::Expr, what: &str) {
        let t = types::ty(e);
        if t.not_a_condition() {
            let text = self.cx.text(e.span).to_string();
            self.cx.error_hint(
                e.span,
                format!(
                    "{what} needs a condition (true or false), but `{text}` is {}",
                    t.describe()
                ),
                condition_hint(t, &text),
            );
        }
    }

    /// Lowers a condition (`when:`, the test of `? :`): its type must be a boolean.
    pub(super) fn condition(&mut self, e: &ast::Expr, what: &str) -> ir::Condition {
        self.boolean(e, what);
        ir::Condition {
            expr: self.expr(e),
            text: self.cx.text(e.span).to_string(),
        }
    }

    /// Lowers the entries of an object literal, reporting duplicate keys.
    pub(super) fn object(
        &mut self,
        entries: &[(ast::Ident, ast::Expr)],
    ) -> Vec<(String, ir::Expr)> {
        self.cx.check_unique("key", entries.iter().map(|(k, _)| k));
        entries
            .iter()
            .map(|(k, v)| (k.node.clone(), self.expr(v)))
            .collect()
    }

    /// A name used as a value: it must be in scope. `entity` adds a hint when the name is a
    /// field of the entity a filter or update is about.
    /// `input.x` where a typed `input:` declares no `x`.
    fn input_name(&mut self, field: &str, span: Span) {
        let Some(names) = &self.input_names else {
            return;
        };
        if names.iter().any(|n| n == field) {
            return;
        }
        let hint = did_you_mean(field, names.iter().map(String::as_str)).unwrap_or_else(|| {
            let quoted: Vec<&str> = names.iter().map(String::as_str).collect();
            format!("the job's input declares {}", super::suggest::list(&quoted))
        });
        self.cx
            .error_hint(span, format!("`{field}` is not a declared input"), hint);
    }

    /// `field` is the field read of the name right after it (`name.field`), if any.
    fn var(
        &mut self,
        name: &str,
        span: Span,
        entity: Option<&EntityInfo>,
        field: Option<&str>,
    ) -> ir::Expr {
        if self.scope.iter().any(|n| n == name) {
            return ir::Expr::Var(name.to_string());
        }
        if let Some(step) = self.later.get(name) {
            let message = format!(
                "`{name}` is used before the step that binds it (`as: {name}` in step `{step}`)"
            );
            self.cx.error_hint(
                span,
                message,
                "steps run in order: a step sees the bindings of the steps before it",
            );
        } else if entity.is_some_and(|e| e.field(name).is_some()) {
            self.cx.error_hint(
                span,
                format!("unknown name `{name}`"),
                format!(
                    "`{name}` is a field of `{}`, but the right side is a value: fields cannot be compared with each other",
                    entity.map(EntityInfo::name).unwrap_or_default()
                ),
            );
        } else if let Some(hint) = entity.and_then(|e| {
            did_you_mean(name, e.field_names().iter().copied())
                .map(|h| format!("{h} (a field of `{}`)", e.name()))
        }) {
            self.cx
                .error_hint(span, format!("unknown name `{name}`"), hint);
        } else if Builtin::by_name(name).is_some_and(|(_, min, _)| min == 0) {
            self.cx.error_hint(
                span,
                format!("unknown name `{name}`"),
                format!("`{name}` is a function: call it with `{name}()`"),
            );
        } else {
            let hint = self.unknown_name_hint(name, field);
            self.cx
                .error_maybe(span, format!("unknown name `{name}`"), hint);
        }
        ir::Expr::Var(name.to_string())
    }

    /// The hint for a name not in scope. The items of the enclosing `for_each` steps and
    /// `item -> …` conditions come first (innermost first), then the other names in the order
    /// they came into scope; for `name.field`, a name whose value cannot have `field` (a list
    /// of rows, for `row.sku`) is not suggested, and inside a loop whose item can have it, the
    /// item is.
    fn unknown_name_hint(&self, name: &str, field: Option<&str>) -> Option<String> {
        let mut names: Vec<&str> = self.items.iter().rev().map(String::as_str).collect();
        for n in &self.scope {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
        // The item of a `for_each` step that has ended.
        if let Some((_, step)) = self.past_items.iter().rev().find(|(item, _)| item == name) {
            return Some(format!(
                "`{name}` is the item of step `{step}`'s `for_each`, in scope only inside that \
                 step; to use its items later, bind the step (`as: …`) and read its records' \
                 `item`"
            ));
        }
        let can_read =
            |n: &str, f: &str| matches!(self.read(&self.binding_shape(n), n, f), Read::Found(_));
        // `sku` where the item `row` is a row with a field `sku`.
        if field.is_none() {
            let holder = self.items.iter().rev().find(|item| {
                matches!(self.binding_shape(item), Shape::Row(_) | Shape::Object(_))
                    && can_read(item, name)
            });
            if let Some(item) = holder {
                return Some(format!(
                    "`{name}` is a field of `{item}`: write `{item}.{name}`"
                ));
            }
        }
        let candidates: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| field.is_none_or(|f| can_read(n, f)))
            .collect();
        if let Some(hint) = did_you_mean(name, candidates.iter().copied()) {
            return Some(hint);
        }
        // `row.sku` inside a loop over rows whose item is named otherwise.
        if let (Some(f), Some(item)) = (field, self.items.last()) {
            let shape = self.binding_shape(item);
            if matches!(shape, Shape::Row(_) | Shape::Object(_)) && can_read(item, f) {
                return Some(format!(
                    "the item here is `{item}`: did you mean `{item}.{f}`?"
                ));
            }
        }
        // Inside an action, a name of the calling job: actions see only their parameters.
        if let Some(action) = self.action_stack.last() {
            let have = if names.is_empty() {
                "none here".to_string()
            } else {
                format!("here {}", super::suggest::list(&names))
            };
            return Some(format!(
                "an action sees its parameters and its own bindings ({have}), not those of the \
                 job that calls it: add `{name}` to `action {action}(…)`'s parameters and pass \
                 it where the action is called"
            ));
        }
        (!names.is_empty())
            .then(|| format!("names in scope here are {}", super::suggest::list(&names)))
    }

    fn call(&mut self, name: &ast::Ident, args: &[ast::Expr], span: Span) -> ir::Expr {
        let lowered: Vec<ir::Expr> = match Builtin::by_name(&name.node) {
            Some((each @ (Builtin::Filter | Builtin::Find), ..)) => self.each_args(each, args),
            // A missing field in `default`'s path reads as nothing: no build error for it.
            Some((Builtin::Default, ..)) => args
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    self.lenient += u32::from(i == 0);
                    let e = self.expr(a);
                    self.lenient -= u32::from(i == 0);
                    e
                })
                .collect(),
            _ => args.iter().map(|a| self.expr(a)).collect(),
        };
        self.builtin_arguments(&name.node, args);
        let Some((builtin, min, max)) = Builtin::by_name(&name.node) else {
            let names: Vec<&str> = Builtin::ALL.iter().map(|(_, n, ..)| *n).collect();
            let hint = did_you_mean(&name.node, names.iter().copied()).unwrap_or_else(|| {
                "the built-in functions are listed in the README's \"The DSL in one page\""
                    .to_string()
            });
            self.cx
                .error_hint(name.span, format!("unknown function `{}`", name.node), hint);
            return ir::Expr::Null;
        };
        if args.len() < min || args.len() > max {
            self.cx.error(
                span,
                format!(
                    "`{}` takes {}, found {}",
                    name.node,
                    arity(min, max),
                    args.len()
                ),
            );
        }
        if CLOCK_BUILTINS.contains(&builtin) {
            self.usage.caps.insert("clock");
        }
        if STATE_BUILTINS.contains(&builtin) {
            self.usage.caps.insert("state");
        }
        // A pattern written out is checked now, not when the job runs.
        if let (Builtin::Format, Some(pattern)) = (builtin, args.get(1)) {
            if let ExprKind::Str(p) = &pattern.kind {
                if let Err(e) = codeai_ir::number::format(0.0, p) {
                    self.cx.error_hint(
                        pattern.span,
                        e,
                        "`0` a digit always shown, `#` one shown when needed, `,` thousands, `.` decimals: \"#,##0.00\"",
                    );
                }
            }
        }
        // `sum(orders, "totl")` over rows whose fields are known: the field is checked now (over
        // an empty list the run would not notice, and report 0).
        if let (
            Builtin::Sum | Builtin::Avg | Builtin::Min | Builtin::Max | Builtin::Pluck,
            [list, field],
        ) = (builtin, args)
        {
            if let (ExprKind::Str(f), Shape::List(item)) = (&field.kind, self.shape_of(list)) {
                let text = self.path_text(list);
                if let Read::Missing(_, hint) = self.read(&item, "", f) {
                    self.cx.error_hint(
                        field.span,
                        format!("the items of `{text}` have no field `{f}`"),
                        hint,
                    );
                }
            }
        }
        ir::Expr::Call(builtin, lowered)
    }

    /// The arguments of `filter(list, item -> condition)` and `find(…)`: the condition is
    /// checked with the item in scope (its shape the list's items'), and must be a condition.
    fn each_args(&mut self, each: Builtin, args: &[ast::Expr]) -> Vec<ir::Expr> {
        let name = each.name();
        let mut lowered = Vec::with_capacity(args.len());
        let Some(list) = args.first() else {
            return lowered;
        };
        lowered.push(self.expr(list));
        let list_text = self.cx.text(list.span).to_string();
        for arg in &args[1..] {
            let ExprKind::Lambda(item, body) = &arg.kind else {
                let example = match &arg.kind {
                    // `filter(rows, "status")`: a condition on that field, as its type reads.
                    ExprKind::Str(field) if !field.contains("{{") => {
                        let ty = match self.shape_of(list).item() {
                            Shape::Row(entity) => self
                                .decls
                                .entity(&entity)
                                .and_then(|e| e.field(field))
                                .and_then(|f| f.ty),
                            _ => None,
                        };
                        let test = match ty {
                            Some(FieldType::Bool) => String::new(),
                            Some(FieldType::Int | FieldType::Float) => " > 0".to_string(),
                            Some(FieldType::Date | FieldType::Datetime) => {
                                " >= today().start".to_string()
                            }
                            Some(_) => " = \"…\"".to_string(),
                            None => " = …".to_string(),
                        };
                        format!("{name}({list_text}, item -> item.{field}{test})")
                    }
                    _ => format!("{name}({list_text}, item -> item.amount > 100)"),
                };
                self.cx.error_hint(
                    arg.span,
                    format!(
                        "`{name}` takes a condition on each item of the list, written \
                         `item -> condition`"
                    ),
                    format!("e.g. `{example}`"),
                );
                lowered.push(self.expr(arg));
                continue;
            };
            let shape = self.shape_of(list).item();
            self.bind(&item.node, shape, true);
            let condition = self.condition(body, &format!("`{} -> …` of `{name}`", item.node));
            self.unbind(true);
            lowered.push(ir::Expr::Lambda(
                item.node.clone(),
                Box::new(condition.expr),
            ));
        }
        lowered
    }

    /// A string literal: plain text, or `Interpolated` parts when it contains `{{path}}` or
    /// `{{expression}}` (`{{count(rows)}}`, `{{round(total, 2)}}`).
    pub(super) fn string(&mut self, s: &str, span: Span) -> ir::Expr {
        if !s.contains("{{") {
            return ir::Expr::Str(s.to_string());
        }
        let raw = self.cx.text(span).to_string();
        let mut raw_from = 0;
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(ir::Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                self.cx.error_hint(
                    span,
                    "unclosed `{{` in string",
                    "close it with `}}`, as in `{{metrics.revenue}}`",
                );
                return ir::Expr::Str(s.to_string());
            };
            let inner = &after[..close];
            // Locate the placeholder in the source text for a precise span.
            let path = inner.trim();
            let inner_span = match raw[raw_from..].find("{{") {
                Some(i) => {
                    let start_in_raw = raw_from + i + 2 + (inner.len() - inner.trim_start().len());
                    raw_from = raw_from + i + 2;
                    if raw.get(start_in_raw..start_in_raw + path.len()) == Some(path) {
                        Span::new(
                            span.start + start_in_raw,
                            span.start + start_in_raw + path.len(),
                        )
                    } else {
                        span
                    }
                }
                None => span,
            };
            let value = match self.path(path, inner_span) {
                Some(e) => e,
                // Any other expression, where it can be read in place (no escapes inside).
                None if inner_span != span => {
                    match crate::parser::parse_embedded_expr(self.cx.source, inner_span) {
                        Ok(e) => self.expr(&e),
                        Err(diagnostics) => {
                            self.cx.diagnostics.extend(diagnostics);
                            ir::Expr::Null
                        }
                    }
                }
                // An expression with escapes (`{{format(x, \"0.00\")}}`): read as the string
                // means it, its mistakes shown at the whole `{{…}}`.
                None => {
                    let whole = raw[raw_from..].find("}}").map_or(span, |end| {
                        Span::new(span.start + raw_from - 2, span.start + raw_from + end + 2)
                    });
                    match crate::parser::parse_embedded_expr(path, Span::new(0, path.len())) {
                        Ok(mut e) => {
                            e.respan(whole);
                            self.expr(&e)
                        }
                        Err(diagnostics) => {
                            for d in diagnostics {
                                let message = format!("in `{{{{{path}}}}}`: {}", d.message);
                                match d.hint {
                                    Some(h) => self.cx.error_hint(whole, message, h),
                                    None => self.cx.error(whole, message),
                                }
                            }
                            ir::Expr::Null
                        }
                    }
                }
            };
            parts.push(ir::Part::Expr(value));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(ir::Part::Text(rest.to_string()));
        }
        ir::Expr::Interpolated(parts)
    }

    /// `name.field.0.other` inside `{{ }}`; `None` when it is not such a path.
    fn path(&mut self, path: &str, span: Span) -> Option<ir::Expr> {
        let is_ident = |s: &str| {
            s.chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
                && s.chars().all(|c| c.is_alphanumeric() || c == '_')
        };
        let mut segments = path.split('.');
        let first = segments.next().unwrap_or("");
        let rest: Vec<&str> = segments.collect();
        let valid = is_ident(first)
            && rest
                .iter()
                .all(|s| is_ident(s) || (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())));
        if !valid {
            return None;
        }
        let field = rest
            .first()
            .filter(|f| f.parse::<usize>().is_err())
            .copied();
        let mut e = self.var(
            first,
            Span::new(span.start, span.start + first.len()),
            None,
            field,
        );
        if let (true, Some(field)) = (first == "input", rest.first()) {
            let start = span.start + first.len() + 1;
            self.input_name(field, Span::new(start, start + field.len()));
        }
        // What is known of the value, segment by segment (a field a row or an object written
        // out cannot have is an error at that segment).
        let precise = span.end - span.start == path.len();
        let mut shape = self.binding_shape(first);
        let mut text = first.to_string();
        let mut at = span.start + first.len() + 1;
        for seg in rest {
            let seg_span = match precise {
                true => Span::new(at, at + seg.len()),
                false => span,
            };
            at += seg.len() + 1;
            e = match seg.parse::<i64>() {
                Ok(i) => {
                    shape = shape.item();
                    ir::Expr::Index(Box::new(e), Box::new(ir::Expr::Int(i)))
                }
                Err(_) => {
                    shape = match self.read(&shape, &text, seg) {
                        Read::Found(next) => next,
                        Read::Missing(message, hint) => {
                            self.cx.error_hint(seg_span, message, hint);
                            Shape::Unknown
                        }
                    };
                    ir::Expr::Field(Box::new(e), seg.to_string())
                }
            };
            text = format!("{text}.{seg}");
        }
        Some(e)
    }

    // -----------------------------------------------------------------------------------------
    // Entity-bound forms
    // -----------------------------------------------------------------------------------------

    /// Arithmetic and comparisons whose operands' types the text shows and which would only
    /// fail when the job runs (or never hold) are build errors: arithmetic on an operand that is
    /// not a number (nor, for `+`, a string or a list; a time takes durations), `1 + "a"`,
    /// `"abc" - 1`, `count(rows) > "5"`, `count(rows) = "0"`.
    fn check_operands(&mut self, op: BinaryOp, left: &ast::Expr, right: &ast::Expr) {
        use super::types::{text, ty, Text, Ty};
        let (l, r) = (ty(left), ty(right));
        let verb = match op {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "subtract",
            BinaryOp::Mul => "multiply",
            BinaryOp::Div => "divide",
            BinaryOp::Rem => "take the remainder of",
            BinaryOp::Lt
            | BinaryOp::Le
            | BinaryOp::Gt
            | BinaryOp::Ge
            | BinaryOp::Eq
            | BinaryOp::Ne => return self.check_comparison(op, left, right, l, r),
            _ => return,
        };
        // `+` joins lists (a list and something unknown may be two lists).
        let lists = op == BinaryOp::Add
            && matches!(
                (l, r),
                (Ty::List, Ty::List | Ty::Unknown) | (Ty::Unknown, Ty::List)
            );
        for (side, t) in [(left, l), (right, r)] {
            if lists || matches!(t, Ty::Number | Ty::Unknown | Ty::Str) {
                continue;
            }
            let hint = match &side.kind {
                ExprKind::Call(name, _) if t == Ty::Object => format!(
                    "`{}()` is a period `{{start, end, label}}`: use `{}().start` or `{}().end`",
                    name.node, name.node, name.node
                ),
                _ => "arithmetic takes numbers, durations and times".to_string(),
            };
            self.cx
                .error_hint(side.span, format!("cannot {verb} {}", t.describe()), hint);
            return;
        }
        // Strings: `+` after a string joins text; a time takes and gives durations; nothing
        // else takes a string.
        let (lt, rt) = (
            self.cx.text(left.span).to_string(),
            self.cx.text(right.span).to_string(),
        );
        let unquote = |e: &ast::Expr, text: &str| match quoted_number(e) {
            Some(n) => format!(
                "`{text}` is text: remove the quotes (`{n}`), or convert a value with `number(…)`"
            ),
            None => String::new(),
        };
        match (op, l, r) {
            // `1 + "a"`, `30d + now()`, `1 - "a"`.
            (BinaryOp::Add | BinaryOp::Sub, Ty::Number, Ty::Str) => {
                let hint = if quoted_number(right).is_some() {
                    unquote(right, &rt)
                } else if text(right) == Some(Text::Time) && op == BinaryOp::Add {
                    format!("a time and a duration are added time first: `{rt} + {lt}`")
                } else if op == BinaryOp::Add {
                    format!("to join them as text, start with the text: `concat({lt}, {rt})` or `string({lt}) + {rt}`")
                } else {
                    "only a time takes a duration away (`now() - 7d`); a number takes numbers"
                        .to_string()
                };
                let message = if op == BinaryOp::Add && text(right) == Some(Text::Time) {
                    format!("cannot add a time to a number: `{lt} + {rt}` fails when the job runs")
                } else if op == BinaryOp::Add {
                    format!(
                        "cannot add a string to a number: `{lt}` is a number and `{rt}` a string"
                    )
                } else {
                    format!("cannot subtract a string from a number: `{lt}` is a number and `{rt}` a string")
                };
                self.cx.error_hint(right.span, message, hint);
            }
            // `"abc" - 1`, `now() - "abc"`: only times subtract.
            (BinaryOp::Sub, _, _)
                if text(left) == Some(Text::Other) || text(right) == Some(Text::Other) =>
            {
                let side = if text(left) == Some(Text::Other) {
                    left
                } else {
                    right
                };
                let shown = self.cx.text(side.span).to_string();
                let day = matches!(&side.kind, ExprKind::Str(s)
                    if chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok());
                let hint = if quoted_number(side).is_some() {
                    unquote(side, &shown)
                } else if day {
                    let day = shown.trim_matches('"');
                    format!(
                        "a day is not a time: write the time and its offset, `\"{day}T00:00:00Z\"`"
                    )
                } else {
                    "subtraction takes numbers, durations and times (`now() - 7d`, `b - a` of two times)".to_string()
                };
                self.cx.error_hint(
                    side.span,
                    format!("cannot subtract with `{shown}`: it is text, not a number or a time"),
                    hint,
                );
            }
            // `"5" * 2`, `now() / 2`.
            (BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem, _, _)
                if l == Ty::Str || r == Ty::Str =>
            {
                let (side, shown) = if l == Ty::Str {
                    (left, &lt)
                } else {
                    (right, &rt)
                };
                let hint = match quoted_number(side) {
                    Some(_) => unquote(side, shown),
                    None => "arithmetic takes numbers and durations: convert text that holds a number with `number(…)`".to_string(),
                };
                self.cx
                    .error_hint(side.span, format!("cannot {verb} a string"), hint);
            }
            _ => {}
        }
    }

    /// `a < b` of values that cannot be ordered fails when the job runs, and `a = b` of a
    /// number and a string never holds: both are build errors where the types are known.
    fn check_comparison(
        &mut self,
        op: BinaryOp,
        left: &ast::Expr,
        right: &ast::Expr,
        l: Ty,
        r: Ty,
    ) {
        use super::types::Ty;
        if l == Ty::Unknown || r == Ty::Unknown {
            return;
        }
        let (lt, rt) = (
            self.cx.text(left.span).to_string(),
            self.cx.text(right.span).to_string(),
        );
        let unquote = || {
            [(left, &lt), (right, &rt)]
                .into_iter()
                .find_map(|(e, text)| {
                    quoted_number(e).map(|n| format!("`{text}` is text: remove the quotes (`{n}`)"))
                })
        };
        let written = self
            .cx
            .text(Span::new(
                left.span.end,
                right.span.start.max(left.span.end),
            ))
            .trim()
            .to_string();
        let symbol = match op {
            _ if !written.is_empty() => written,
            BinaryOp::Eq => "=".to_string(),
            BinaryOp::Ne => "!=".to_string(),
            BinaryOp::Lt => "<".to_string(),
            BinaryOp::Le => "<=".to_string(),
            BinaryOp::Gt => ">".to_string(),
            _ => ">=".to_string(),
        };
        let whole = left.span.to(right.span);
        match op {
            BinaryOp::Eq | BinaryOp::Ne => {
                // Only the mix the quotes make: a number and a string, never equal.
                let mixed = matches!((l, r), (Ty::Number, Ty::Str) | (Ty::Str, Ty::Number));
                if !mixed {
                    return;
                }
                let never = if op == BinaryOp::Eq {
                    "never holds"
                } else {
                    "always holds"
                };
                let hint = unquote().unwrap_or_else(|| {
                    "a number never equals a string: convert one with `number(…)` or `string(…)`"
                        .to_string()
                });
                self.cx.error_hint(
                    whole,
                    format!(
                        "`{lt} {symbol} {rt}` compares {} with {}, so it {never}",
                        l.describe(),
                        r.describe()
                    ),
                    hint,
                );
            }
            _ if l.ordered_with(r) => {}
            _ => {
                let hint = unquote().unwrap_or_else(|| {
                    "`<`, `<=`, `>`, `>=` order numbers with numbers, strings with strings (times \
                     by their instant) and booleans with booleans"
                        .to_string()
                });
                self.cx.error_hint(
                    whole,
                    format!(
                        "cannot order {} and {}: `{lt} {symbol} {rt}` fails when the job runs",
                        l.describe(),
                        r.describe()
                    ),
                    hint,
                );
            }
        }
    }

    /// A built-in's arguments whose types the text shows and that it cannot take (it would fail
    /// when the job runs): `round("3.5")`, `sum(12)`, `count(true)`, `format_date(42)`.
    fn builtin_arguments(&mut self, name: &str, args: &[ast::Expr]) {
        use super::types::{text, ty, Text, Ty};
        use Builtin as B;
        let Some((builtin, ..)) = Builtin::by_name(name) else {
            return;
        };
        let Some(first) = args.first() else { return };
        let t = ty(first);
        if t == Ty::Unknown {
            return;
        }
        let (fits, wanted) = match builtin {
            B::Round | B::Abs | B::Floor | B::Ceil | B::DaysAgo | B::HoursAgo | B::MinutesAgo => {
                (t == Ty::Number, "a number")
            }
            B::Format => (
                t == Ty::Number
                    || (t == Ty::Str && text(first) != Some(Text::Other))
                    || matches!(&first.kind, ExprKind::Str(s) if s.trim().parse::<f64>().is_ok()),
                "a number",
            ),
            B::Count | B::Len => (
                matches!(t, Ty::List | Ty::Object | Ty::Str | Ty::Null),
                "a list",
            ),
            B::Contains => (
                matches!(t, Ty::List | Ty::Object | Ty::Str | Ty::Null),
                "a list or a string",
            ),
            B::Sum
            | B::Avg
            | B::Min
            | B::Max
            | B::Pluck
            | B::First
            | B::Last
            | B::Join
            | B::Filter
            | B::Find => (matches!(t, Ty::List | Ty::Null), "a list"),
            B::FormatDate => (
                (t == Ty::Str && text(first) != Some(Text::Other))
                    || t == Ty::Object
                    || matches!(&first.kind, ExprKind::Str(s)
                        if chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()),
                "a time",
            ),
            _ => return,
        };
        if fits {
            return;
        }
        let shown = self.cx.text(first.span).to_string();
        let hint = match (&first.kind, wanted) {
            (ExprKind::Str(s), "a number") if s.trim().parse::<f64>().is_ok() => {
                format!("`{shown}` is text: remove the quotes (`{}`)", s.trim())
            }
            (_, "a number") => "convert text that holds a number with `number(…)`".to_string(),
            (_, "a time") => {
                "e.g. `format_date(now())`, `format_date(row.created_at, \"%d.%m.%Y\")`".to_string()
            }
            _ => format!("`{name}` takes a list, like the rows a `query:` step binds"),
        };
        self.cx.error_hint(
            first.span,
            format!("`{name}` needs {wanted}, but `{shown}` is {}", t.describe()),
            hint,
        );
    }

    /// Looks a field up, reporting "entity `Product` has no field `qty`".
    pub(super) fn entity_field<'e>(
        &mut self,
        entity: &'e EntityInfo,
        name: &ast::Ident,
    ) -> Option<&'e FieldInfo> {
        let found = entity.field(&name.node);
        if found.is_none() {
            let hint = hint_or_list(&name.node, "its fields", &entity.field_names());
            self.cx.error_hint(
                name.span,
                format!("entity `{}` has no field `{}`", entity.name(), name.node),
                hint,
            );
        }
        found
    }

    /// Lowers a `where` expression to a filter tree.
    pub(super) fn filter(&mut self, e: &ast::Expr, entity: &EntityInfo) -> Filter {
        match &e.kind {
            ExprKind::Binary(BinaryOp::And, a, b) => {
                let mut all = Vec::new();
                for side in [a, b] {
                    match self.filter(side, entity) {
                        Filter::All(inner) => all.extend(inner),
                        f => all.push(f),
                    }
                }
                Filter::All(all)
            }
            ExprKind::Binary(BinaryOp::Or, a, b) => {
                let mut any = Vec::new();
                for side in [a, b] {
                    match self.filter(side, entity) {
                        Filter::Any(inner) => any.extend(inner),
                        f => any.push(f),
                    }
                }
                Filter::Any(any)
            }
            ExprKind::Unary(ast::UnaryOp::Not, inner) => {
                Filter::Not(Box::new(self.filter(inner, entity)))
            }
            ExprKind::Binary(
                op @ (BinaryOp::Eq
                | BinaryOp::Ne
                | BinaryOp::Lt
                | BinaryOp::Le
                | BinaryOp::Gt
                | BinaryOp::Ge
                | BinaryOp::In
                | BinaryOp::Like),
                left,
                right,
            ) => self.compare(*op, left, right, e.span, entity),
            // A bare bool field: `where active`.
            ExprKind::Ident(name) if entity.field(name).is_some() => {
                let field = entity.field(name);
                if field
                    .and_then(|f| f.ty)
                    .is_some_and(|t| t != FieldType::Bool)
                {
                    self.cx.error_hint(
                        e.span,
                        format!(
                            "`{name}` is not a bool field, so it cannot be a condition by itself"
                        ),
                        format!("compare it: `{name} = …`"),
                    );
                }
                Filter::Compare {
                    field: name.clone(),
                    op: CompareOp::Eq,
                    value: ir::Expr::Bool(true),
                }
            }
            _ => {
                self.cx.error_hint(
                    e.span,
                    "expected a comparison of a field of the entity",
                    "a filter compares fields with values, like `quantity < 10 and status = \"open\"`",
                );
                Filter::All(Vec::new())
            }
        }
    }

    fn compare(
        &mut self,
        op: BinaryOp,
        left: &ast::Expr,
        right: &ast::Expr,
        span: Span,
        entity: &EntityInfo,
    ) -> Filter {
        if self.mentions_column(right, entity)
            || (!matches!(left.kind, ExprKind::Ident(_)) && self.mentions_column(left, entity))
        {
            return self.term_compare(op, left, right, span, entity);
        }
        let ExprKind::Ident(name) = &left.kind else {
            self.cx.error_hint(
                left.span,
                format!(
                    "the left side of a comparison in a filter must be a field of `{}`",
                    entity.name()
                ),
                "write the field first, like `quantity < 10`",
            );
            return Filter::All(Vec::new());
        };
        let ident = ast::Ident::new(name.clone(), left.span);
        let field = self.entity_field(entity, &ident);
        let lit = literal(right);
        let op = match (op, lit) {
            (BinaryOp::Eq, Some(Lit::Null)) => CompareOp::IsNull,
            (BinaryOp::Ne, Some(Lit::Null)) => CompareOp::IsNotNull,
            (_, Some(Lit::Null)) => {
                self.cx.error_hint(
                    right.span,
                    "only `=` and `!=` can compare with `null`",
                    format!("write `{name} = null` or `{name} != null`"),
                );
                CompareOp::IsNull
            }
            (BinaryOp::Eq, _) => CompareOp::Eq,
            (BinaryOp::Ne, _) => CompareOp::Ne,
            (BinaryOp::Lt, _) => CompareOp::Lt,
            (BinaryOp::Le, _) => CompareOp::Le,
            (BinaryOp::Gt, _) => CompareOp::Gt,
            (BinaryOp::Ge, _) => CompareOp::Ge,
            (BinaryOp::In, _) => CompareOp::In,
            _ => CompareOp::Like,
        };
        if let Some(field) = field {
            self.check_compare(field, op, right, span);
        }
        let value = match op {
            CompareOp::IsNull | CompareOp::IsNotNull => ir::Expr::Null,
            _ => self.value(right, entity),
        };
        Filter::Compare {
            field: name.clone(),
            op,
            value,
        }
    }

    /// Whether `e` computes with a field of the entity (a name no binding in scope hides, or a
    /// filter function or arithmetic over one); such comparisons become [`Filter::Terms`].
    fn mentions_column(&self, e: &ast::Expr, entity: &EntityInfo) -> bool {
        match &e.kind {
            ExprKind::Ident(n) => !self.scope.contains(n) && entity.field(n).is_some(),
            ExprKind::Binary(
                BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem,
                a,
                b,
            ) => self.mentions_column(a, entity) || self.mentions_column(b, entity),
            ExprKind::Unary(ast::UnaryOp::Neg, inner) => self.mentions_column(inner, entity),
            ExprKind::Call(name, args) if TermFunc::by_name(&name.node).is_some() => {
                args.iter().any(|a| self.mentions_column(a, entity))
            }
            _ => false,
        }
    }

    /// `left op right` where a side computes with fields: `quantity <= reorder_level`,
    /// `lower(name) = x`, `price * quantity > 100`.
    fn term_compare(
        &mut self,
        op: BinaryOp,
        left: &ast::Expr,
        right: &ast::Expr,
        span: Span,
        entity: &EntityInfo,
    ) -> Filter {
        let op = match op {
            BinaryOp::Eq => CompareOp::Eq,
            BinaryOp::Ne => CompareOp::Ne,
            BinaryOp::Lt => CompareOp::Lt,
            BinaryOp::Le => CompareOp::Le,
            BinaryOp::Gt => CompareOp::Gt,
            BinaryOp::Ge => CompareOp::Ge,
            other => {
                let word = if other == BinaryOp::In { "in" } else { "like" };
                self.cx.error_hint(
                    span,
                    format!("`{word}` compares a field with values, not with other fields"),
                    "compare fields with `=`, `!=`, `<`, `<=`, `>` or `>=`",
                );
                return Filter::All(Vec::new());
            }
        };
        for side in [left, right] {
            if matches!(side.kind, ExprKind::Null) {
                self.cx.error_hint(
                    side.span,
                    "a comparison of fields cannot use `null`",
                    "test a field with `field = null` or `field != null`",
                );
                return Filter::All(Vec::new());
            }
        }
        let (l, lk) = self.term(left, entity);
        let (r, rk) = self.term(right, entity);
        let comparable = match (lk, rk) {
            (TermKind::Unknown, _) | (_, TermKind::Unknown) => true,
            (TermKind::Field(a), TermKind::Field(b)) => {
                a == b
                    || matches!(
                        (a, b),
                        (
                            FieldType::Int | FieldType::Float,
                            FieldType::Int | FieldType::Float
                        )
                    )
                    || matches!(
                        (a, b),
                        (
                            FieldType::String | FieldType::Uuid,
                            FieldType::String | FieldType::Uuid
                        )
                    )
            }
        };
        if !comparable {
            let text = |this: &Self, e: &ast::Expr| this.cx.text(e.span).to_string();
            let message = format!(
                "cannot compare `{}` ({}) with `{}` ({})",
                text(self, left),
                lk.describe(),
                text(self, right),
                rk.describe()
            );
            self.cx.error_hint(
                span,
                message,
                "both sides of a comparison have the same type: numbers, strings, dates or datetimes",
            );
        } else if matches!(
            op,
            CompareOp::Lt | CompareOp::Le | CompareOp::Gt | CompareOp::Ge
        ) && [lk, rk].iter().any(|k| {
            matches!(
                k,
                TermKind::Field(FieldType::Bool | FieldType::Uuid | FieldType::Json)
            )
        }) {
            self.cx.error(
                span,
                "booleans, uuids and json have no order: compare them with `=` or `!=`",
            );
        }
        Filter::Terms {
            left: l,
            op,
            right: r,
        }
    }

    /// One side of a field comparison, with its type as far as it is known.
    fn term(&mut self, e: &ast::Expr, entity: &EntityInfo) -> (Term, TermKind) {
        if !self.mentions_column(e, entity) {
            let kind = match literal(e) {
                Some(Lit::Number | Lit::Duration) => TermKind::Field(FieldType::Float),
                Some(Lit::Str) => TermKind::Unknown,
                Some(Lit::Bool) => TermKind::Field(FieldType::Bool),
                _ => TermKind::Unknown,
            };
            return (Term::Value(self.expr(e)), kind);
        }
        match &e.kind {
            ExprKind::Ident(name) => {
                let ident = ast::Ident::new(name.clone(), e.span);
                let kind = self
                    .entity_field(entity, &ident)
                    .and_then(|f| f.ty)
                    .map_or(TermKind::Unknown, TermKind::Field);
                (Term::Column(name.clone()), kind)
            }
            ExprKind::Unary(ast::UnaryOp::Neg, inner) => {
                let (t, k) = self.term(inner, entity);
                self.numeric(inner, k);
                (
                    Term::Arith(
                        ArithOp::Sub,
                        Box::new(Term::Value(ir::Expr::Int(0))),
                        Box::new(t),
                    ),
                    TermKind::Field(FieldType::Float),
                )
            }
            ExprKind::Binary(
                op @ (BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div),
                a,
                b,
            ) => {
                let (ta, ka) = self.term(a, entity);
                let (tb, kb) = self.term(b, entity);
                self.numeric(a, ka);
                self.numeric(b, kb);
                let op = match op {
                    BinaryOp::Add => ArithOp::Add,
                    BinaryOp::Sub => ArithOp::Sub,
                    BinaryOp::Mul => ArithOp::Mul,
                    _ => ArithOp::Div,
                };
                (
                    Term::Arith(op, Box::new(ta), Box::new(tb)),
                    TermKind::Field(FieldType::Float),
                )
            }
            ExprKind::Call(name, args) => {
                let Some(func) = TermFunc::by_name(&name.node) else {
                    return (Term::Value(ir::Expr::Null), TermKind::Unknown);
                };
                if args.len() != 1 {
                    self.cx.error(
                        e.span,
                        format!("`{}` takes 1 argument, found {}", name.node, args.len()),
                    );
                    return (Term::Value(ir::Expr::Null), TermKind::Unknown);
                }
                let (t, k) = self.term(&args[0], entity);
                let (wants, result): (&[FieldType], FieldType) = match func {
                    TermFunc::Lower | TermFunc::Upper => (&[FieldType::String], FieldType::String),
                    TermFunc::Length => (&[FieldType::String], FieldType::Int),
                    TermFunc::Hour => (&[FieldType::Datetime], FieldType::Int),
                    _ => (&[FieldType::Date, FieldType::Datetime], FieldType::Int),
                };
                if let TermKind::Field(ty) = k {
                    if !wants.contains(&ty) {
                        let needs = wants
                            .iter()
                            .map(|t| type_name(*t))
                            .collect::<Vec<_>>()
                            .join(" or ");
                        self.cx.error(
                            args[0].span,
                            format!(
                                "`{}` needs {needs}, but `{}` is {}",
                                name.node,
                                self.cx.text(args[0].span),
                                type_name(ty)
                            ),
                        );
                    }
                }
                (Term::Func(func, Box::new(t)), TermKind::Field(result))
            }
            _ => {
                self.cx.error_hint(
                    e.span,
                    "a filter cannot compute this with fields",
                    "filters compute with `+ - * /` and `lower`, `upper`, `length`, `year`, `month`, `day`, `hour` of fields",
                );
                (Term::Value(ir::Expr::Null), TermKind::Unknown)
            }
        }
    }

    /// Reports an operand of filter arithmetic that is not a number.
    fn numeric(&mut self, e: &ast::Expr, kind: TermKind) {
        if let TermKind::Field(ty) = kind {
            if !matches!(ty, FieldType::Int | FieldType::Float) {
                let text = self.cx.text(e.span).to_string();
                self.cx.error(
                    e.span,
                    format!(
                        "arithmetic in a filter needs numbers, but `{text}` is {}",
                        type_name(ty)
                    ),
                );
            }
        }
    }

    /// A value on the right of a comparison or assignment (a bare field name gets a hint).
    fn value(&mut self, e: &ast::Expr, entity: &EntityInfo) -> ir::Expr {
        match &e.kind {
            ExprKind::Ident(name) => self.var(name, e.span, Some(entity), None),
            _ => self.expr(e),
        }
    }

    /// Type checks of the literal on the right of a comparison.
    fn check_compare(&mut self, field: &FieldInfo, op: CompareOp, right: &ast::Expr, span: Span) {
        let Some(ty) = field.ty else { return };
        match op {
            CompareOp::IsNull | CompareOp::IsNotNull => {}
            CompareOp::Like => {
                if !matches!(ty, FieldType::String | FieldType::Uuid) {
                    self.cx.error_hint(
                        span,
                        format!(
                            "`like` needs a string field, but `{}` is {}",
                            field.name,
                            type_name(ty)
                        ),
                        "`like` matches text patterns such as `\"a%\"`",
                    );
                } else if let Some(lit) = literal(right).filter(|l| *l != Lit::Str) {
                    self.cx.error_hint(
                        right.span,
                        format!(
                            "`like` needs a string pattern, but `{}` is {}",
                            self.cx.text(right.span),
                            lit_name(lit)
                        ),
                        "write a pattern such as `\"INV-%\"`",
                    );
                }
            }
            CompareOp::In => match (&right.kind, literal(right)) {
                (ExprKind::List(items), _) => {
                    for item in items {
                        self.check_literal(field, item);
                    }
                }
                (_, Some(lit)) => self.cx.error_hint(
                    right.span,
                    format!(
                        "`in` needs a list, but `{}` is {}",
                        self.cx.text(right.span),
                        lit_name(lit)
                    ),
                    format!("write a list, like `{} in [\"a\", \"b\"]`", field.name),
                ),
                _ => {}
            },
            _ => self.check_literal(field, right),
        }
    }

    /// Reports a literal whose type does not fit the field.
    fn check_literal(&mut self, field: &FieldInfo, value: &ast::Expr) {
        let (Some(ty), Some(lit)) = (field.ty, literal(value)) else {
            return;
        };
        let fits = match (ty, lit) {
            (_, Lit::Null) | (FieldType::Json, _) => true,
            (FieldType::String | FieldType::Uuid, l) => l == Lit::Str,
            (FieldType::Int | FieldType::Float, l) => matches!(l, Lit::Number | Lit::Duration),
            (FieldType::Datetime | FieldType::Date, l) => l == Lit::Str,
            (FieldType::Bool, l) => l == Lit::Bool,
        };
        if fits {
            self.check_time_literal(field.name.as_str(), ty, value);
            return;
        }
        let text = self.cx.text(value.span).to_string();
        let message = format!(
            "field `{}` is {}, but `{text}` is {}",
            field.name,
            type_name(ty),
            lit_name(lit)
        );
        let hint = match (ty, lit) {
            (FieldType::String | FieldType::Uuid, Lit::Number) => {
                Some(format!("quote it: `\"{text}\"`"))
            }
            (FieldType::Datetime | FieldType::Date, Lit::Duration) => Some(format!(
                "a duration is not a point in time: write `now() - {text}`"
            )),
            (FieldType::Datetime | FieldType::Date, _) => Some(
                "compare with a time such as `now()`, `days_ago(7)` or an RFC 3339 string"
                    .to_string(),
            ),
            (FieldType::Int | FieldType::Float, Lit::Str) => {
                let unquoted = text.trim_matches('"');
                unquoted
                    .parse::<f64>()
                    .is_ok()
                    .then(|| format!("remove the quotes: `{unquoted}`"))
            }
            _ => None,
        };
        self.cx.error_maybe(value.span, message, hint);
    }

    /// A string compared with a `datetime` field must be an RFC 3339 date-time, and one compared
    /// with a `date` field a day (`2026-01-15`) or a date-time: what the host takes. Checked
    /// here, not at run time.
    fn check_time_literal(&mut self, field: &str, ty: FieldType, value: &ast::Expr) {
        let ExprKind::Str(text) = &value.kind else {
            return;
        };
        if text.contains("{{") {
            return;
        }
        let instant = chrono::DateTime::parse_from_rfc3339(text).is_ok();
        let day = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok();
        let (ok, wanted) = match ty {
            FieldType::Datetime => (instant, "an RFC 3339 date-time"),
            FieldType::Date => (instant || day, "a date (YYYY-MM-DD)"),
            _ => return,
        };
        if ok {
            return;
        }
        let hint = if day {
            format!("give the time and its offset: `\"{text}T00:00:00Z\"` (midnight UTC)")
        } else if ty == FieldType::Date {
            "write it like `\"2026-01-15\"`, or compare with `today().start` or `days_ago(7)`"
                .to_string()
        } else {
            "write it like `\"2026-01-15T10:00:00Z\"`, or compare with `now()`, `today().start` \
             or `days_ago(7)`"
                .to_string()
        };
        self.cx.error_hint(
            value.span,
            format!(
                "field `{field}` is {}, but `\"{text}\"` is not {wanted}",
                type_name(ty)
            ),
            hint,
        );
    }

    /// `set f = v, g = g + 1` of an update.
    pub(super) fn assignments(
        &mut self,
        set: &[(ast::Ident, ast::Expr)],
        entity: &EntityInfo,
    ) -> Vec<Assignment> {
        self.cx
            .check_unique("assignment to", set.iter().map(|(f, _)| f));
        let mut out = Vec::new();
        for (name, value) in set {
            let field = self.entity_field(entity, name);
            // `f = f + n` and `f = f - n` are atomic increments.
            if let ExprKind::Binary(op @ (BinaryOp::Add | BinaryOp::Sub), l, r) = &value.kind {
                if matches!(&l.kind, ExprKind::Ident(n) if *n == name.node) {
                    if let Some(ty) = field.and_then(|f| f.ty) {
                        if !matches!(ty, FieldType::Int | FieldType::Float) {
                            self.cx.error(
                                value.span,
                                format!(
                                    "`{0} = {0} + n` needs a number field, but `{0}` is {1}",
                                    name.node,
                                    type_name(ty)
                                ),
                            );
                        }
                    }
                    if let Some(lit) = literal(r).filter(|l| *l != Lit::Number) {
                        self.cx.error(
                            r.span,
                            format!(
                                "an increment must be a number, but `{}` is {}",
                                self.cx.text(r.span),
                                lit_name(lit)
                            ),
                        );
                    }
                    let amount = self.value(r, entity);
                    let amount = match (op, amount) {
                        (BinaryOp::Add, a) => a,
                        (_, ir::Expr::Int(i)) => ir::Expr::Int(-i),
                        (_, ir::Expr::Float(f)) => ir::Expr::Float(-f),
                        (_, a) => ir::Expr::Unary(ir::UnaryOp::Neg, Box::new(a)),
                    };
                    out.push(Assignment::Add {
                        field: name.node.clone(),
                        amount,
                    });
                    continue;
                }
            }
            if let Some(field) = field {
                self.check_assigned(field, value);
            }
            // A value that reads the row's own fields (`price = price * 1.19`) is not a value.
            if !matches!(value.kind, ExprKind::Ident(_)) {
                let mut read = Vec::new();
                fields_read(value, entity, &self.scope, &mut read);
                if let Some(other) = read.first() {
                    self.cx.error_hint(
                        other.span,
                        format!(
                            "`set {} = …` cannot compute from the row's field `{}`",
                            name.node, other.node
                        ),
                        format!(
                            "`set` takes values, and `{0} = {0} + n` or `{0} = {0} - n` to add to a \
                             number; for other arithmetic on a row, read the rows (`query: select …`) \
                             and update each in a `for_each`",
                            name.node
                        ),
                    );
                    continue;
                }
            }
            let value = self.value(value, entity);
            out.push(Assignment::Set {
                field: name.node.clone(),
                value,
            });
        }
        out
    }

    /// Checks a literal assigned to (or inserted into) a field.
    fn check_assigned(&mut self, field: &FieldInfo, value: &ast::Expr) {
        if literal(value) == Some(Lit::Null) && !field.optional {
            self.cx.error_hint(
                value.span,
                format!(
                    "field `{}` is not optional, so it cannot be set to null",
                    field.name
                ),
                "declare the field `optional` to allow null",
            );
        } else if literal(value) == Some(Lit::List) && field.ty != Some(FieldType::Json) {
            self.cx.error(
                value.span,
                format!(
                    "field `{}` is {}, but a list can only be stored in a json field",
                    field.name,
                    field.ty.map(type_name).unwrap_or("not json")
                ),
            );
        } else {
            self.check_literal(field, value);
        }
    }

    /// `insert E { f: v, … }`.
    pub(super) fn insert_values(
        &mut self,
        values: &[(ast::Ident, ast::Expr)],
        entity: &EntityInfo,
    ) -> Vec<(String, ir::Expr)> {
        self.cx
            .check_unique("value for", values.iter().map(|(f, _)| f));
        values
            .iter()
            .map(|(name, value)| {
                if let Some(field) = self.entity_field(entity, name) {
                    self.check_assigned(field, value);
                }
                (name.node.clone(), self.value(value, entity))
            })
            .collect()
    }

    /// `order by f [desc], …`.
    pub(super) fn order(
        &mut self,
        order: &[(ast::Ident, bool)],
        entity: &EntityInfo,
    ) -> Vec<OrderBy> {
        order
            .iter()
            .map(|(name, descending)| {
                self.entity_field(entity, name);
                OrderBy {
                    field: name.node.clone(),
                    descending: *descending,
                }
            })
            .collect()
    }
}

/// The names in `e` that are fields of `entity` and not bindings in `scope` (object keys and
/// field accesses are not names).
fn fields_read(e: &ast::Expr, entity: &EntityInfo, scope: &[String], out: &mut Vec<ast::Ident>) {
    match &e.kind {
        ExprKind::Ident(n) if entity.field(n).is_some() && !scope.iter().any(|s| s == n) => {
            out.push(ast::Spanned::new(n.clone(), e.span));
        }
        // The item of `item -> …` is not a field.
        ExprKind::Lambda(item, body) => {
            let mut inner = scope.to_vec();
            inner.push(item.node.clone());
            fields_read(body, entity, &inner, out);
        }
        _ => {
            for part in e.parts() {
                fields_read(part, entity, scope, out);
            }
        }
    }
}

/// The number a string literal holds (`"5"` → `5`): text where a number was meant.
fn quoted_number(e: &ast::Expr) -> Option<String> {
    match &e.kind {
        ExprKind::Str(s) if s.trim().parse::<f64>().is_ok() => Some(s.trim().to_string()),
        _ => None,
    }
}
