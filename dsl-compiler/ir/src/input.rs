//! A job's typed input (`input: { start_date: date = yesterday().start, recipients: [string] }`):
//! the declaration the compiler writes into the program and the manifest, and the one check of a
//! run's input against it, shared by the host (`POST /jobs/{id}/run`, before anything is enqueued)
//! and the guest (every run, whoever started it).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One declared input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputField {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: InputType,
    /// Whether the declaration gives a default; a field without one is required.
    pub has_default: bool,
}

/// The type of an input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputType {
    /// An untyped entry (`name: default`, the form without a type): any JSON value.
    Any,
    String,
    Int,
    Float,
    Bool,
    /// An ISO date `2026-01-12`; the job sees the start of that day in its timezone.
    Date,
    /// An RFC 3339 date-time with an offset, `2026-01-12T06:00:00Z`.
    Datetime,
    /// `[T]`.
    List(Box<InputType>),
    /// `T?`: also `null`.
    Optional(Box<InputType>),
}

impl InputType {
    /// The type as the DSL spells it: `[date]`, `string?`.
    pub fn spelling(&self) -> String {
        match self {
            InputType::Any => "any".into(),
            InputType::String => "string".into(),
            InputType::Int => "int".into(),
            InputType::Float => "float".into(),
            InputType::Bool => "bool".into(),
            InputType::Date => "date".into(),
            InputType::Datetime => "datetime".into(),
            InputType::List(t) => format!("[{}]", t.spelling()),
            InputType::Optional(t) => format!("{}?", t.spelling()),
        }
    }

    /// Whether a date appears in the type (its values need converting at run time).
    pub fn has_date(&self) -> bool {
        match self {
            InputType::Date => true,
            InputType::List(t) | InputType::Optional(t) => t.has_date(),
            _ => false,
        }
    }

    /// Checks a value against the type; the reason names what was expected and what came.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        let wrong = |what: &str| Err(format!("expected {what}, got {}", shown(value)));
        match (self, value) {
            (InputType::Any, _) => Ok(()),
            (InputType::Optional(_), Value::Null) => Ok(()),
            (InputType::Optional(t), v) => t.check(v),
            (InputType::String, Value::String(_)) => Ok(()),
            (InputType::String, _) => wrong("a string"),
            (InputType::Int, Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(()),
            (InputType::Int, _) => wrong("an integer"),
            (InputType::Float, Value::Number(_)) => Ok(()),
            (InputType::Float, _) => wrong("a number"),
            (InputType::Bool, Value::Bool(_)) => Ok(()),
            (InputType::Bool, _) => wrong("true or false"),
            (InputType::Date, Value::String(s)) => {
                if parse_date(s).is_some() {
                    Ok(())
                } else {
                    Err(format!("`{}` is not an ISO date (YYYY-MM-DD)", clip(s)))
                }
            }
            (InputType::Date, _) => wrong("an ISO date string (YYYY-MM-DD)"),
            (InputType::Datetime, Value::String(s)) => {
                if is_rfc3339(s) {
                    Ok(())
                } else {
                    Err(format!(
                        "`{}` is not an ISO date-time with an offset (like 2026-01-12T06:00:00Z)",
                        clip(s)
                    ))
                }
            }
            (InputType::Datetime, _) => wrong("an ISO date-time string"),
            (InputType::List(t), Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    t.check(item).map_err(|e| format!("item {i}: {e}"))?;
                }
                Ok(())
            }
            (InputType::List(_), _) => wrong(&format!("a list ({})", self.spelling())),
        }
    }
}

/// Why a run's input does not fit the declaration: the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub field: String,
    pub reason: String,
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "input `{}`: {}", self.field, self.reason)
    }
}

/// Checks a run's input (a JSON object, or null for none) against the declared fields: every
/// required field present, every value of its type, no undeclared key. The first problem found.
pub fn validate(fields: &[InputField], input: &Value) -> Result<(), InputError> {
    let empty = Map::new();
    let given = match input {
        Value::Object(m) => m,
        Value::Null => &empty,
        other => {
            return Err(InputError {
                field: "input".into(),
                reason: format!("the input must be a JSON object, got {}", describe(other)),
            })
        }
    };
    for key in given.keys() {
        if !fields.iter().any(|f| &f.name == key) {
            let names: Vec<String> = fields.iter().map(|f| format!("`{}`", f.name)).collect();
            return Err(InputError {
                field: key.clone(),
                reason: format!(
                    "not a declared input (the job declares {})",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            });
        }
    }
    for f in fields {
        match given.get(&f.name) {
            None if !f.has_default => {
                return Err(InputError {
                    field: f.name.clone(),
                    reason: format!("required ({}) and missing", f.ty.spelling()),
                })
            }
            None => {}
            Some(v) => f.ty.check(v).map_err(|reason| InputError {
                field: f.name.clone(),
                reason,
            })?,
        }
    }
    Ok(())
}

/// `(year, month, day)` of an ISO date `YYYY-MM-DD` that exists in the calendar.
pub fn parse_date(s: &str) -> Option<(i32, u32, u32)> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(&b[0..4])? as i32;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    (1..=12).contains(&month).then_some(())?;
    (1..=days_in_month(year, month))
        .contains(&day)
        .then_some(())?;
    Some((year, month, day))
}

/// Whether `s` is an RFC 3339 date-time: `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)`.
pub fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 20 || !s.is_ascii() || parse_date(&s[..10]).is_none() {
        return false;
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return false;
    }
    let (Some(h), Some(m), Some(sec)) =
        (digits(&b[11..13]), digits(&b[14..16]), digits(&b[17..19]))
    else {
        return false;
    };
    if h > 23 || m > 59 || sec > 60 {
        return false;
    }
    let mut rest = &b[19..];
    if rest.first() == Some(&b'.') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &rest[1 + n..];
    }
    match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            matches!((digits(&[*h1, *h2]), digits(&[*m1, *m2])), (Some(h), Some(m)) if h < 24 && m < 60)
        }
        _ => false,
    }
}

fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |n, c| {
        c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
    })
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn clip(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// A value for "expected …, got …": a scalar as written (a string in quotes, clipped), a list
/// or an object by its kind.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{}\"", clip(s)),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => describe(other).to_string(),
    }
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        other => crate::kind_of(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(name: &str, ty: InputType, has_default: bool) -> InputField {
        InputField {
            name: name.into(),
            ty,
            has_default,
        }
    }

    #[test]
    fn dates_and_datetimes() {
        assert_eq!(parse_date("2026-01-12"), Some((2026, 1, 12)));
        assert_eq!(parse_date("2024-02-29"), Some((2024, 2, 29)));
        assert_eq!(parse_date("2026-02-29"), None);
        assert_eq!(parse_date("2026-13-01"), None);
        assert_eq!(parse_date("2026-1-12"), None);
        assert!(is_rfc3339("2026-01-12T06:00:00Z"));
        assert!(is_rfc3339("2026-01-12T06:00:00.125-05:00"));
        assert!(!is_rfc3339("2026-01-12T06:00:00"));
        assert!(!is_rfc3339("2026-01-12T25:00:00Z"));
        assert!(!is_rfc3339("2026-01-12"));
    }

    #[test]
    fn validates_against_the_declaration() {
        let fields = [
            field("start", InputType::Date, false),
            field("to", InputType::List(Box::new(InputType::String)), true),
            field("n", InputType::Optional(Box::new(InputType::Int)), true),
        ];
        assert_eq!(validate(&fields, &json!({"start": "2026-01-01"})), Ok(()));
        assert_eq!(
            validate(
                &fields,
                &json!({"start": "2026-01-01", "n": null, "to": ["a"]})
            ),
            Ok(())
        );
        let err = |v: Value| validate(&fields, &v).unwrap_err();
        assert_eq!(err(json!({})).field, "start");
        assert_eq!(err(Value::Null).reason, "required (date) and missing");
        let e = err(json!({"start": "2026-02-30"}));
        assert_eq!(e.reason, "`2026-02-30` is not an ISO date (YYYY-MM-DD)");
        let e = err(json!({"start": "2026-01-01", "to": ["a", 3]}));
        assert_eq!(
            (e.field.as_str(), e.reason.as_str()),
            ("to", "item 1: expected a string, got 3")
        );
        assert_eq!(err(json!({"start": "2026-01-01", "n": 1.5})).field, "n");
        let e = err(json!({"start": "2026-01-01", "extra": 1}));
        assert_eq!(e.field, "extra");
        assert!(e.reason.contains("not a declared input"), "{}", e.reason);
        assert_eq!(err(json!([1])).field, "input");
    }
}
