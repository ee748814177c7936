//! Diagnostics: what the parser and the checker report, and how it is shown to a person.
//!
//! A [`Diagnostic`] is data (a span, a message, a hint); [`render`] turns it into the
//! `file:line:col` form with the source line and a caret under the span. Keeping the two apart lets
//! tests compare either, and lets callers (the CLI, an editor, the HTTP API) choose the output.

use crate::ast::Span;
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in a source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub span: Span,
    /// What is wrong, as one sentence without a trailing period: "unknown entity `Prodcut`".
    pub message: String,
    /// What to do about it, if there is something useful to say: "did you mean `Product`?".
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            span,
            message: message.into(),
            hint: None,
        }
    }

    pub fn warning(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            span,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The diagnostic as a JSON object for editors and CI annotations: `file`, `line`,
    /// `column`, `end_line`, `end_column` (1-based, columns in characters, the end exclusive),
    /// `severity` (`error` or `warning`), `message` and `hint` (null when there is none).
    pub fn to_json(&self, file: &str, source: &str) -> serde_json::Value {
        let (line, column) = line_col(source, self.span.start);
        let (end_line, end_column) = line_col(source, self.span.end.max(self.span.start));
        serde_json::json!({
            "file": file,
            "line": line,
            "column": column,
            "end_line": end_line,
            "end_column": end_column,
            "severity": match self.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            },
            "message": self.message,
            "hint": self.hint,
        })
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(source, offset.min(source.len()));
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = source[line_start..offset].chars().count() + 1;
    (line, col)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Renders one diagnostic:
///
/// ```text
/// error: unknown entity `Prodcut`
///   --> jobs.codeai:12:27
///    |
/// 12 |     query: select Prodcut where quantity < 10
///    |                   ^^^^^^^
///    = hint: did you mean `Product`?
/// ```
pub fn render(file_name: &str, source: &str, d: &Diagnostic) -> String {
    let (line, col) = line_col(source, d.span.start);
    let line_start = source[..floor_char_boundary(source, d.span.start.min(source.len()))]
        .rfind('\n')
        .map(|i| i + 1)
        .unwrap_or(0);
    let line_end = source[line_start..]
        .find('\n')
        .map(|i| line_start + i)
        .unwrap_or(source.len());
    let text = source[line_start..line_end].trim_end_matches('\r');
    let gutter = line.to_string().len();
    let level = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    // The caret covers the span on its first line (at least one character).
    let span_end = floor_char_boundary(source, d.span.end.min(line_end).max(d.span.start));
    let width = source
        .get(floor_char_boundary(source, d.span.start.min(source.len()))..span_end)
        .map(|s| s.chars().count())
        .unwrap_or(0)
        .max(1);
    let mut out = String::new();
    let _ = writeln!(out, "{level}: {}", d.message);
    let _ = writeln!(out, "{:gutter$}--> {file_name}:{line}:{col}", "");
    let _ = writeln!(out, "{:gutter$} |", "");
    let _ = writeln!(out, "{line} | {text}");
    let _ = writeln!(
        out,
        "{:gutter$} | {}{}",
        "",
        " ".repeat(col - 1),
        "^".repeat(width)
    );
    if let Some(hint) = &d.hint {
        let _ = writeln!(out, "{:gutter$} = hint: {hint}", "");
    }
    out
}

/// Renders every diagnostic, sorted by position, separated by blank lines.
pub fn render_all(file_name: &str, source: &str, diagnostics: &[Diagnostic]) -> String {
    let mut sorted: Vec<&Diagnostic> = diagnostics.iter().collect();
    sorted.sort_by_key(|d| (d.span.start, d.span.end));
    sorted
        .iter()
        .map(|d| render(file_name, source, d))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let src = "ab\ncdé f\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 3), (2, 1));
        // 'f' is after a two-byte 'é' and a space: byte 8, character column 5.
        assert_eq!(line_col(src, 8), (2, 5));
    }

    #[test]
    fn render_points_at_the_span() {
        let src = "job A {\n    queue: urgent\n}\n";
        let start = src.find("urgent").unwrap();
        let d = Diagnostic::error(Span::new(start, start + 6), "unknown queue `urgent`")
            .with_hint("declared queues are critical, default, low");
        let text = render("jobs.codeai", src, &d);
        assert_eq!(
            text,
            "error: unknown queue `urgent`\n \
             --> jobs.codeai:2:12\n  |\n2 |     queue: urgent\n  |            ^^^^^^\n  \
             = hint: declared queues are critical, default, low\n"
        );
    }
}
