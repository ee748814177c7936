//! A job's `input:` declaration. Each entry is `name: type = default`, `name: type` (required) or
//! the untyped `name: default`; a declaration with at least one type is *typed*: the host checks a
//! run's input against it and the guest turns ISO dates into the start of that day.
//!
//! Types are `string int float bool date datetime json` and lists `[T]`; a default of `null` makes
//! the field optional (`null` is also accepted). A default is typed as far as its text shows.

use super::job::JobCx;
use super::suggest::did_you_mean;
use super::types::{ty, Ty};
use crate::ast::{self, BinaryOp, ExprKind};
use codeai_ir::input::{is_rfc3339, parse_date, InputField, InputType};
use codeai_ir::{Builtin, Expr};
use std::collections::BTreeMap;

const TYPE_NAMES: &[&str] = &["string", "int", "float", "bool", "date", "datetime", "json"];

/// What the checker keeps of the declaration.
pub(super) struct Lowered {
    pub(super) defaults: BTreeMap<String, Expr>,
    /// Every declared name (required ones included), in order.
    pub(super) names: Vec<String>,
    /// `Some` when the declaration is typed.
    pub(super) fields: Option<Vec<InputField>>,
}

/// The type an entry's value spells, if it spells one: `date`, `[string]`. `Err` is an unknown
/// type name, already reported.
fn type_of(jcx: &mut JobCx<'_, '_>, e: &ast::Expr) -> Option<Result<InputType, ()>> {
    match &e.kind {
        ExprKind::Ident(name) => Some(match name.as_str() {
            "string" => Ok(InputType::String),
            "int" => Ok(InputType::Int),
            "float" => Ok(InputType::Float),
            "bool" => Ok(InputType::Bool),
            "date" => Ok(InputType::Date),
            "datetime" => Ok(InputType::Datetime),
            "json" => Ok(InputType::Any),
            other => {
                let hint = did_you_mean(other, TYPE_NAMES.iter().copied()).unwrap_or_else(|| {
                    "input types are `string`, `int`, `float`, `bool`, `date`, `datetime`, `json` and lists like `[string]`".to_string()
                });
                jcx.cx
                    .error_hint(e.span, format!("unknown input type `{other}`"), hint);
                Err(())
            }
        }),
        ExprKind::List(items) if items.len() == 1 && type_of_quiet(&items[0]) => {
            Some(type_of(jcx, &items[0])?.map(|t| InputType::List(Box::new(t))))
        }
        _ => None,
    }
}

/// Whether an expression has the shape of a type (a bare name, or a list of one).
fn type_of_quiet(e: &ast::Expr) -> bool {
    match &e.kind {
        ExprKind::Ident(_) => true,
        ExprKind::List(items) => items.len() == 1 && type_of_quiet(&items[0]),
        _ => false,
    }
}

/// Checks the entries of `input: { … }` and lowers their defaults.
pub(super) fn declaration(
    jcx: &mut JobCx<'_, '_>,
    entries: &[(ast::Ident, &ast::Expr)],
) -> Lowered {
    let mut defaults = BTreeMap::new();
    let mut names = Vec::new();
    let mut fields = Vec::new();
    let mut typed = false;
    for (key, value) in entries {
        if names.contains(&key.node) {
            continue; // reported by `check_unique`
        }
        names.push(key.node.clone());
        // `name: type = default`, `name: type`, or the untyped `name: default`.
        let (ty_expr, default) = match &value.kind {
            ExprKind::Binary(BinaryOp::Eq, t, d) if type_of_quiet(t) => (Some(&**t), Some(&**d)),
            _ if type_of_quiet(value) => (Some(*value), None),
            _ => (None, Some(*value)),
        };
        let declared = match ty_expr {
            Some(t) => {
                typed = true;
                match type_of(jcx, t) {
                    Some(Ok(t)) => Some(t),
                    _ => None,
                }
            }
            None => Some(InputType::Any),
        };
        let mut field_ty = declared.clone().unwrap_or(InputType::Any);
        if let Some(d) = default {
            let lowered = match (&declared, &d.kind) {
                (_, ExprKind::Null) => {
                    if !matches!(field_ty, InputType::Any) {
                        field_ty = InputType::Optional(Box::new(field_ty));
                    }
                    Expr::Null
                }
                (Some(t), _) => {
                    check_default(jcx, &key.node, t, d);
                    let lowered = jcx.expr(d);
                    start_of_period(t, d, lowered)
                }
                (None, _) => jcx.expr(d),
            };
            defaults.insert(key.node.clone(), lowered);
        }
        if field_ty.has_date() {
            jcx.usage.caps.insert("clock");
        }
        fields.push(InputField {
            name: key.node.clone(),
            ty: field_ty,
            has_default: default.is_some(),
        });
    }
    Lowered {
        defaults,
        names,
        fields: typed.then_some(fields),
    }
}

/// `date = yesterday()` means the period's start.
fn start_of_period(t: &InputType, d: &ast::Expr, lowered: Expr) -> Expr {
    let period = matches!(&d.kind, ExprKind::Call(name, _) if matches!(
        Builtin::by_name(&name.node).map(|b| b.0),
        Some(Builtin::Today | Builtin::Yesterday | Builtin::Tomorrow | Builtin::ThisWeek
            | Builtin::LastWeek | Builtin::ThisMonth | Builtin::LastMonth | Builtin::ThisYear
            | Builtin::LastYear)
    ));
    if period && matches!(t, InputType::Date | InputType::Datetime) {
        Expr::Field(Box::new(lowered), "start".into())
    } else {
        lowered
    }
}

/// Reports a default whose type, as far as the text shows, is not the declared one.
fn check_default(jcx: &mut JobCx<'_, '_>, name: &str, t: &InputType, d: &ast::Expr) {
    // A date written out that is not one (`"2026-13-01"`, a datetime without its offset): what
    // is wrong with it, as `POST /jobs/{id}/run` says it of an input.
    if let (ExprKind::Str(text), InputType::Date | InputType::Datetime) = (&d.kind, t) {
        if let Err(reason) = t.check(&serde_json::Value::String(text.clone())) {
            jcx.cx.error_hint(
                d.span,
                format!("the default of input `{name}`: {reason}"),
                default_hint(t),
            );
            return;
        }
    }
    if let Some(reason) = misfit(t, d) {
        jcx.cx.error_hint(
            d.span,
            format!(
                "the default of input `{name}` is {reason}, but `{name}` is declared `{}`",
                t.spelling()
            ),
            default_hint(t),
        );
    }
}

fn default_hint(t: &InputType) -> String {
    match t {
        InputType::Date => {
            "a date default is an ISO date like \"2026-01-12\" or a day like `yesterday().start`"
                .into()
        }
        InputType::Datetime => {
            "a datetime default is like \"2026-01-12T06:00:00Z\" or `now()`".into()
        }
        other => format!("give a default of type `{}`, or `null`", other.spelling()),
    }
}

/// Why a default does not fit the type, when its text shows it.
fn misfit(t: &InputType, d: &ast::Expr) -> Option<String> {
    let shown = ty(d);
    let wrong = || Some(shown.describe().to_string());
    match t {
        InputType::Any | InputType::Optional(_) => None,
        InputType::String => {
            (!matches!(shown, Ty::Str | Ty::Unknown)).then(|| shown.describe().into())
        }
        InputType::Int => match &d.kind {
            ExprKind::Float(_) => Some("a number with a fraction".into()),
            ExprKind::Duration(_) => None,
            _ => (!matches!(shown, Ty::Number | Ty::Unknown)).then(|| shown.describe().into()),
        },
        InputType::Float => {
            (!matches!(shown, Ty::Number | Ty::Unknown)).then(|| shown.describe().into())
        }
        InputType::Bool => {
            (!matches!(shown, Ty::Bool | Ty::Unknown)).then(|| shown.describe().into())
        }
        InputType::Date | InputType::Datetime => match &d.kind {
            ExprKind::Str(s) if s.contains("{{") => None,
            ExprKind::Str(s) => {
                let ok = if *t == InputType::Date {
                    parse_date(s).is_some()
                } else {
                    is_rfc3339(s)
                };
                (!ok).then(|| format!("the string \"{s}\""))
            }
            // `today()`, `yesterday()`, …: the period's start.
            ExprKind::Call(..) if shown == Ty::Object => None,
            _ => (!matches!(shown, Ty::Str | Ty::Unknown))
                .then(wrong)
                .flatten(),
        },
        InputType::List(item) => match &d.kind {
            ExprKind::List(items) => items
                .iter()
                .find_map(|i| misfit(item, i).map(|r| format!("a list holding {r}"))),
            _ => (!matches!(shown, Ty::List | Ty::Unknown)).then(|| shown.describe().into()),
        },
    }
}

/// A job that runs on an event gets the event's data as its input: with a typed declaration,
/// every field the event carries must be declared with a type its values fit, and every field
/// the declaration requires must be one the event carries. Otherwise each triggered run would
/// be refused at its start: an error at the event's name in `trigger: on(…)`.
pub(super) fn fits_event(
    cx: &mut super::Cx<'_>,
    span: crate::ast::Span,
    event: &codeai_ir::EventDecl,
    fields: &[InputField],
) {
    use codeai_ir::FieldType as F;
    fn fits(from: F, to: &InputType) -> bool {
        match to {
            InputType::Any => true,
            InputType::Optional(t) => fits(from, t),
            InputType::String => matches!(from, F::String | F::Uuid),
            InputType::Int => from == F::Int,
            InputType::Float => matches!(from, F::Int | F::Float),
            InputType::Bool => from == F::Bool,
            InputType::Date => from == F::Date,
            InputType::Datetime => from == F::Datetime,
            InputType::List(_) => from == F::Json,
        }
    }
    for carried in &event.fields {
        match fields.iter().find(|f| f.name == carried.name) {
            None => cx.error_hint(
                span,
                format!(
                    "event `{}` carries `{}`, which this job's input does not declare",
                    event.name, carried.name
                ),
                format!(
                    "declare it in `input: {{ … }}` (a typed input refuses undeclared keys): `{}: {}`",
                    carried.name,
                    carried.ty.name()
                ),
            ),
            Some(field) if !fits(carried.ty, &field.ty) => cx.error_hint(
                span,
                format!(
                    "event `{}` carries `{}` as {}, but the input declares it {}",
                    event.name,
                    carried.name,
                    carried.ty.name(),
                    field.ty.spelling()
                ),
                "declare the input field with the event's type",
            ),
            Some(_) => {}
        }
    }
    for field in fields.iter().filter(|f| !f.has_default) {
        if !event.fields.iter().any(|c| c.name == field.name) {
            cx.error_hint(
                span,
                format!(
                    "input `{}` is required, but event `{}` does not carry it",
                    field.name, event.name
                ),
                "give it a default, or trigger on an event that carries it",
            );
        }
    }
}
