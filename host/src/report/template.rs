//! `{{path}}` interpolation of template text against a job's JSON data.
//!
//! Template declarations (titles, subjects, bodies) are rendered by the host with the data the
//! job hands over. A path names what the data holds ([`codeai_ir::template`]); one that is
//! missing is an error naming it and what is there (the compiler checks the same where the step
//! writes its data out), unless it reads on through `?.`, where missing is nothing.

use codeai_ir::template::{path, placeholders};
use serde_json::Value;

/// Replaces every `{{a.b.0.c}}` in `text` with the value at that path in `data`.
pub fn interpolate(text: &str, data: &Value) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for p in placeholders(text) {
        out.push_str(&text[at..p.start]);
        out.push_str(&display(resolve(data, p.inner)?));
        at = p.end;
    }
    out.push_str(&text[at..]);
    Ok(out)
}

/// The value at a path, or why there is none: `customer.name` where the data has no
/// `customer` is an error (with the fields it has); after `?.` missing reads as null.
pub fn resolve<'a>(data: &'a Value, text: &str) -> Result<&'a Value, String> {
    let Some(segments) = path(text) else {
        return Err(format!("`{{{{{text}}}}}` is not a path into the data"));
    };
    let (i, current) = match step_down(data, segments.iter().map(|s| s.name)) {
        Ok(v) => return Ok(v),
        Err(stop) => stop,
    };
    if segments[..=i].iter().any(|s| s.optional) {
        return Ok(&Value::Null);
    }
    let so_far = segments[..i]
        .iter()
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(".");
    let place = if so_far.is_empty() {
        "the data".to_string()
    } else {
        format!("`{so_far}`")
    };
    let has = match current {
        Value::Object(m) if m.is_empty() => "it has no fields".to_string(),
        Value::Object(m) => format!(
            "it has {}",
            m.keys()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Array(items) => format!("it is a list of {}", items.len()),
        other => format!("it is {}", kind_of(other)),
    };
    Err(format!(
        "`{{{{{text}}}}}`: {place} has no `{}` ({has}; `?.` reads a field that may be missing)",
        segments[i].name
    ))
}

/// Follows `segments` down from `data` (a field of an object, a position in a list); where one
/// is missing, its index and the value that lacks it.
fn step_down<'a, 's>(
    data: &'a Value,
    segments: impl Iterator<Item = &'s str>,
) -> Result<&'a Value, (usize, &'a Value)> {
    let mut current = data;
    for (i, segment) in segments.enumerate() {
        let next = match current {
            Value::Object(m) => m.get(segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|n| items.get(n)),
            _ => None,
        };
        current = next.ok_or((i, current))?;
    }
    Ok(current)
}

/// The value at a dotted path (`metrics.revenue`, `orders.0.id`), or null: for the cells of a
/// table, whose rows may leave a field out.
pub fn lookup<'a>(data: &'a Value, path: &str) -> &'a Value {
    step_down(data, path.split('.').filter(|s| !s.is_empty())).unwrap_or(&Value::Null)
}

pub use codeai_ir::kind_of;

/// How a value reads in a document: strings without quotes, whole numbers without `.0`,
/// other numbers with two decimals, lists joined by commas.
pub fn display(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => format!("{}", f as i64),
            (None, Some(f)) => format!("{f:.2}"),
            _ => n.to_string(),
        },
        Value::Array(items) => items.iter().map(display).collect::<Vec<_>>().join(", "),
        Value::Object(_) => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn interpolates_paths_and_leaves_the_rest() {
        let data = json!({"period": {"label": "2026-01-11"}, "m": {"revenue": 1234.5, "n": 3}, "rows": [{"id": "a"}]});
        assert_eq!(
            interpolate("Sales {{period.label}}: {{ m.n }} orders, {{m.revenue}} ({{rows.0.id}}){{m?.missing}}{{m?.a.b}} {{open", &data).unwrap(),
            "Sales 2026-01-11: 3 orders, 1234.50 (a) {{open"
        );
    }

    #[test]
    fn a_missing_path_is_an_error_naming_what_is_there() {
        let data = json!({"customer": {"name": "Ann", "email": "a@x"}, "rows": []});
        assert_eq!(
            interpolate("Hi {{custmer.name}}", &data).unwrap_err(),
            "`{{custmer.name}}`: the data has no `custmer` (it has `customer`, `rows`; `?.` reads a field that may be missing)"
        );
        assert_eq!(
            interpolate("{{customer.phone}}", &data).unwrap_err(),
            "`{{customer.phone}}`: `customer` has no `phone` (it has `email`, `name`; `?.` reads a field that may be missing)"
        );
        assert!(interpolate("{{rows.0}}", &data)
            .unwrap_err()
            .contains("it is a list of 0"));
        assert!(interpolate("{{round(x)}}", &data)
            .unwrap_err()
            .contains("not a path"));
    }
}
