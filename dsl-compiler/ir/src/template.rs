//! The `{{path}}` placeholders of a template's text: the compiler checks them against the data
//! each step hands over, the host fills them in. A path names a field of the data and then
//! fields or list positions inside it: `customer.name`, `rows.0.id`; after `?.` a missing
//! field reads as nothing (`customer?.phone`), anywhere else it is an error.

/// One `{{…}}` of a text, with its byte range (braces included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placeholder<'a> {
    pub start: usize,
    pub end: usize,
    /// What is between the braces, trimmed.
    pub inner: &'a str,
}

/// The placeholders of `text`, in order; an unclosed `{{` is text.
pub fn placeholders(text: &str) -> Vec<Placeholder<'_>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(open) = text[from..].find("{{").map(|i| from + i) {
        let Some(close) = text[open + 2..].find("}}").map(|i| open + 2 + i) else {
            break;
        };
        out.push(Placeholder {
            start: open,
            end: close + 2,
            inner: text[open + 2..close].trim(),
        });
        from = close + 2;
    }
    out
}

/// One step of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    /// A field name, or a list position in digits.
    pub name: &'a str,
    /// Written after `?.`: missing reads as nothing.
    pub optional: bool,
}

/// The segments of a path (`a.b?.c.0`), or `None` when the text is not a path.
pub fn path(inner: &str) -> Option<Vec<Segment<'_>>> {
    let mut segments = Vec::new();
    let mut rest = inner.trim();
    let mut optional = false;
    loop {
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let name = &rest[..len];
        let digits = name.chars().all(|c| c.is_ascii_digit());
        if name.is_empty() || (segments.is_empty() && digits) {
            return None;
        }
        if !digits && name.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        segments.push(Segment { name, optional });
        rest = &rest[len..];
        if rest.is_empty() {
            return Some(segments);
        }
        if let Some(r) = rest.strip_prefix("?.") {
            optional = true;
            rest = r;
        } else if let Some(r) = rest.strip_prefix('.') {
            optional = false;
            rest = r;
        } else {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_found_with_their_ranges() {
        let text = "Hi {{ name }}, {{a.b}} and {{open";
        let found = placeholders(text);
        assert_eq!(found.len(), 2);
        assert_eq!(
            (found[0].start, found[0].end, found[0].inner),
            (3, 13, "name")
        );
        assert_eq!(&text[found[1].start..found[1].end], "{{a.b}}");
    }

    #[test]
    fn paths_are_names_then_fields_or_positions() {
        let p = path("rows.0?.id").unwrap();
        let names: Vec<_> = p.iter().map(|s| (s.name, s.optional)).collect();
        assert_eq!(names, [("rows", false), ("0", false), ("id", true)]);
        for not_a_path in [
            "round(x, 2)",
            "a + b",
            "0.x",
            "a..b",
            "a.",
            "",
            "x | money",
            "a.1b",
        ] {
            assert!(path(not_a_path).is_none(), "{not_a_path}");
        }
    }
}
