//! `{{path}}` interpolation of template text against a job's JSON data.
//!
//! Template declarations (titles, subjects, bodies) are rendered by the host with the data the
//! job hands over; a path that is missing renders as nothing rather than failing the job, so a
//! template stays usable when a field is optional.

use serde_json::Value;

/// Replaces every `{{a.b.0.c}}` in `text` with the value at that path in `data`.
pub fn interpolate(text: &str, data: &Value) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        match after.find("}}") {
            Some(close) => {
                let path = after[..close].trim();
                out.push_str(&display(lookup(data, path)));
                rest = &after[close + 2..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The value at a dotted path (`metrics.revenue`, `orders.0.id`), or null.
pub fn lookup<'a>(data: &'a Value, path: &str) -> &'a Value {
    let mut current = data;
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        current = match current {
            Value::Object(m) => m.get(segment).unwrap_or(&Value::Null),
            Value::Array(items) => segment
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i))
                .unwrap_or(&Value::Null),
            _ => &Value::Null,
        };
    }
    current
}

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
            interpolate("Sales {{period.label}}: {{ m.n }} orders, {{m.revenue}} ({{rows.0.id}}){{missing}} {{open", &data),
            "Sales 2026-01-11: 3 orders, 1234.50 (a) {{open"
        );
    }
}
