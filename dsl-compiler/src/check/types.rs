//! The static types of expressions, as far as the text shows them: literals, operators and
//! built-ins have a type; a binding or a field read is `Unknown` (its value comes at run time,
//! where the guest checks it again). Conditions (`when:`, `?:`, `and`/`or`/`not`) must be
//! booleans: a known type that is not one is a build error.

use crate::ast::{self, BinaryOp, ExprKind, UnaryOp};
use codeai_ir::Builtin;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ty {
    Bool,
    Number,
    Str,
    List,
    Object,
    Null,
    Unknown,
}

impl Ty {
    /// "a number", "a string", … for messages.
    pub(super) fn describe(self) -> &'static str {
        match self {
            Ty::Bool => "a boolean",
            Ty::Number => "a number",
            Ty::Str => "a string",
            Ty::List => "a list",
            Ty::Object => "an object",
            Ty::Null => "null",
            Ty::Unknown => "a value",
        }
    }

    /// Whether values of these two types can be ordered (`<`, `>=`, …): numbers with numbers,
    /// strings with strings (times by their instant), booleans with booleans.
    pub(super) fn ordered_with(self, other: Ty) -> bool {
        matches!(
            (self, other),
            (Ty::Number, Ty::Number) | (Ty::Str, Ty::Str) | (Ty::Bool, Ty::Bool)
        )
    }

    /// Whether a condition of this type is refused at build time.
    pub(super) fn not_a_condition(self) -> bool {
        !matches!(self, Ty::Bool | Ty::Unknown)
    }
}

/// The type of an expression.
pub(super) fn ty(e: &ast::Expr) -> Ty {
    match &e.kind {
        ExprKind::Null => Ty::Null,
        ExprKind::Bool(_) => Ty::Bool,
        ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Duration(_) => Ty::Number,
        ExprKind::Str(_) => Ty::Str,
        ExprKind::List(_) => Ty::List,
        ExprKind::Object(_) => Ty::Object,
        ExprKind::Ident(_) | ExprKind::Field(..) | ExprKind::OptField(..) | ExprKind::Index(..) => {
            Ty::Unknown
        }
        ExprKind::Unary(UnaryOp::Not, _) => Ty::Bool,
        ExprKind::Unary(UnaryOp::Neg, _) => Ty::Number,
        ExprKind::Binary(op, a, b) => match op {
            BinaryOp::Eq
            | BinaryOp::Ne
            | BinaryOp::Lt
            | BinaryOp::Le
            | BinaryOp::Gt
            | BinaryOp::Ge
            | BinaryOp::And
            | BinaryOp::Or
            | BinaryOp::In
            | BinaryOp::Like => Ty::Bool,
            BinaryOp::Add => match (ty(a), ty(b)) {
                (Ty::Str, _) => Ty::Str,
                (Ty::List, Ty::List) => Ty::List,
                (Ty::Number, Ty::Number) => Ty::Number,
                _ => Ty::Unknown,
            },
            BinaryOp::Sub => match (ty(a), ty(b)) {
                (Ty::Number, Ty::Number) => Ty::Number,
                _ => Ty::Unknown,
            },
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => Ty::Number,
            BinaryOp::Coalesce => same(ty(a), ty(b)),
        },
        ExprKind::Cond(_, a, b) => same(ty(a), ty(b)),
        ExprKind::Call(name, _) => match Builtin::by_name(&name.node) {
            Some((b, ..)) => builtin(b),
            None => Ty::Unknown,
        },
        ExprKind::Lambda(..) => Ty::Unknown,
    }
}

fn same(a: Ty, b: Ty) -> Ty {
    if a == b {
        a
    } else {
        Ty::Unknown
    }
}

fn builtin(b: Builtin) -> Ty {
    use Builtin::*;
    match b {
        Count | Len | Sum | Avg | Round | Abs | Floor | Ceil | ToNumber => Ty::Number,
        Contains => Ty::Bool,
        Now | DaysAgo | HoursAgo | MinutesAgo | FormatDate | Lower | Upper | Trim | Concat
        | ToString | Join | Format => Ty::Str,
        Today | Yesterday | Tomorrow | ThisWeek | LastWeek | ThisMonth | LastMonth | ThisYear
        | LastYear => Ty::Object,
        Pluck | Filter => Ty::List,
        LastSyncTimestamp | LastRunAt | StateGet | Min | Max | First | Last | Coalesce
        | Default | Find => Ty::Unknown,
    }
}

/// What a string's text is, where the text of the program shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Text {
    /// A timestamp (`now()`, `"2026-01-15T10:00:00Z"`, `now() - 7d`): it takes and gives
    /// durations.
    Time,
    /// Text that is not a timestamp (`"abc"`, `"2026-01-15"`, `"12"`): no arithmetic takes it.
    Other,
}

/// The kind of a string expression's text, `None` when only the run shows it (a field, an
/// interpolation, `format_date(…)`).
pub(super) fn text(e: &ast::Expr) -> Option<Text> {
    match &e.kind {
        ExprKind::Str(s) if !s.contains("{{") => {
            Some(if is_time(s) { Text::Time } else { Text::Other })
        }
        ExprKind::Call(name, _) => match Builtin::by_name(&name.node) {
            Some((
                Builtin::Now | Builtin::DaysAgo | Builtin::HoursAgo | Builtin::MinutesAgo,
                ..,
            )) => Some(Text::Time),
            _ => None,
        },
        ExprKind::Binary(BinaryOp::Add | BinaryOp::Sub, a, b)
            if text(a) == Some(Text::Time) && ty(b) == Ty::Number =>
        {
            Some(Text::Time)
        }
        _ => None,
    }
}

/// Whether the guest reads `s` as a timestamp: RFC 3339 with the `T` (as `time::parse` there).
pub(super) fn is_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[10] == b'T'
        && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}
