//! `codeai fmt`: one canonical layout for a `.codeai` file.
//!
//! The formatter works on the token stream, comments included, the way `gofmt` does: it keeps
//! where the author broke lines (a run of blank lines becomes one; none after an opening
//! bracket or before a closing one; none at the ends of the file; a bracket opened on an
//! earlier line closes on a line of its own) and decides everything else:
//! four spaces of indentation per open bracket (brackets opened on one line count once), one
//! space after `:` and `,` and around binary operators, none inside `( … )` and `[ … ]`, one
//! inside a `{ … }` written on one line, strings and comments exactly as written, trailing
//! whitespace removed, one newline at the end.
//!
//! Only a file that parses is formatted, and the result is checked before it is returned: it
//! must lex to the same tokens and the same comments as the input, so formatting can change
//! layout and never meaning. Formatting is a fixed point: `format(format(x)) == format(x)`.

use crate::ast::Span;
use crate::diagnostic::Diagnostic;
use crate::parser::lexer::{lex_keeping_comments, Tok, TokKind};

/// Why a file was not formatted.
#[derive(Debug, Clone)]
pub enum FormatError {
    /// The file does not parse: its syntax errors (nothing is formatted).
    Syntax(Vec<Diagnostic>),
    /// The layout would have changed the tokens: a bug of the formatter, never written out.
    Changed(String),
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FormatError::Syntax(d) => write!(f, "{} syntax error(s)", d.len()),
            FormatError::Changed(why) => write!(f, "the formatter would change the file: {why}"),
        }
    }
}

impl std::error::Error for FormatError {}

const INDENT: &str = "    ";

/// Operators written with a space on each side.
const SPACED: &[&str] = &[
    "==", "!=", "<=", ">=", "&&", "||", "??", "->", "=", "<", ">", "+", "*", "/", "%", "?",
];

/// Words that are operators or introduce a clause: after them a `-` or `!` is unary.
const OPERATOR_WORDS: &[&str] = &[
    "and", "or", "not", "in", "like", "where", "set", "by", "limit", "return",
];

/// The file in its canonical layout.
pub fn format(source: &str) -> Result<String, FormatError> {
    let (_, syntax) = crate::parse(source);
    let errors: Vec<Diagnostic> = syntax.into_iter().filter(|d| d.is_error()).collect();
    if !errors.is_empty() {
        return Err(FormatError::Syntax(errors));
    }
    let (tokens, comments) = lexed(source);
    let out = layout(source, &tokens, &comments);
    let (again, again_comments) = lexed(&out);
    let kinds = |t: &[Tok]| t.iter().map(|t| t.kind.clone()).collect::<Vec<_>>();
    let texts = |s: &str, c: &[Span]| {
        c.iter()
            .map(|c| s[c.range()].to_string())
            .collect::<Vec<_>>()
    };
    if kinds(&tokens) != kinds(&again) {
        return Err(FormatError::Changed("the tokens differ".into()));
    }
    if texts(source, &comments) != texts(&out, &again_comments) {
        return Err(FormatError::Changed("the comments differ".into()));
    }
    Ok(out)
}

fn lexed(source: &str) -> (Vec<Tok>, Vec<Span>) {
    let mut comments = Vec::new();
    let mut tokens = lex_keeping_comments(source, &mut Vec::new(), &mut comments);
    tokens.retain(|t| t.kind != TokKind::Eof);
    (tokens, comments)
}

/// One piece of the file as the layout sees it.
#[derive(Clone, Copy)]
enum Piece<'t> {
    Tok(&'t Tok),
    Comment(Span),
}

impl Piece<'_> {
    fn span(&self) -> Span {
        match self {
            Piece::Tok(t) => t.span,
            Piece::Comment(s) => *s,
        }
    }

    fn punct(&self) -> Option<&'static str> {
        match self {
            Piece::Tok(Tok {
                kind: TokKind::Punct(p),
                ..
            }) => Some(p),
            _ => None,
        }
    }

    fn word(&self) -> Option<&str> {
        match self {
            Piece::Tok(Tok {
                kind: TokKind::Ident(w),
                ..
            }) => Some(w),
            _ => None,
        }
    }

    fn opens(&self) -> bool {
        matches!(self.punct(), Some("{" | "(" | "["))
    }

    fn closes(&self) -> bool {
        matches!(self.punct(), Some("}" | ")" | "]"))
    }

    /// Ends an operand: a `-` after it subtracts, a `(` after it calls.
    fn ends_operand(&self) -> bool {
        match self {
            Piece::Tok(t) => match &t.kind {
                TokKind::Ident(w) => !OPERATOR_WORDS.contains(&w.as_str()),
                TokKind::Punct(p) => matches!(*p, ")" | "]" | "}"),
                TokKind::Eof => false,
                _ => true,
            },
            Piece::Comment(_) => false,
        }
    }
}

fn layout(source: &str, tokens: &[Tok], comments: &[Span]) -> String {
    let mut pieces: Vec<Piece> = tokens.iter().map(Piece::Tok).collect();
    pieces.extend(comments.iter().map(|c| Piece::Comment(*c)));
    pieces.sort_by_key(|p| p.span().start);

    let mut out = String::new();
    // For each open bracket, the indentation and the number of the line that opened it.
    let mut open: Vec<(usize, usize)> = Vec::new();
    let mut line = 0;
    // The line a closer just before this piece was opened on.
    let mut closed_from: Option<usize> = None;
    // For each `?` of a conditional waiting for its `:`, the bracket depth it is at.
    let mut conditionals: Vec<usize> = Vec::new();
    let mut line_indent = 0;
    // Whether the previous `-` or `!` was a prefix (no space after it).
    let mut prefix = false;
    let mut prev: Option<Piece> = None;
    for piece in &pieces {
        let span = piece.span();
        let text = &source[span.range()];
        match prev {
            None => {}
            Some(p) => {
                let between = &source[p.span().end..span.start];
                let mut newlines = between.matches('\n').count();
                // A bracket opened on an earlier line closes on a line of its own (after the
                // closers of brackets opened beside it: `})`).
                if newlines == 0 && piece.closes() {
                    let from = open.last().map_or(line, |o| o.1);
                    if from < line && closed_from != Some(from) {
                        newlines = 1;
                    }
                }
                if newlines > 0 {
                    out.push('\n');
                    line += 1;
                    let blank_allowed = !p.opens() && !piece.closes();
                    if newlines > 1 && blank_allowed {
                        out.push('\n');
                    }
                    line_indent = match open.last() {
                        Some((opener, _)) if piece.closes() => *opener,
                        Some((opener, _)) => opener + 1,
                        None => 0,
                    };
                    for _ in 0..line_indent {
                        out.push_str(INDENT);
                    }
                } else if spaced(p, *piece, prefix, &conditionals, open.len(), between) {
                    out.push(' ');
                }
            }
        }
        out.push_str(text);

        let p = piece.punct();
        prefix = matches!(p, Some("-" | "!")) && !prev.is_some_and(|q| q.ends_operand());
        closed_from = None;
        match p {
            Some("{" | "(" | "[") => open.push((line_indent, line)),
            Some("}" | ")" | "]") => {
                closed_from = open.pop().map(|o| o.1);
                conditionals.retain(|depth| *depth <= open.len());
            }
            Some("?") => conditionals.push(open.len()),
            Some(":") if conditionals.last() == Some(&open.len()) => {
                conditionals.pop();
            }
            _ => {}
        }
        prev = Some(*piece);
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// Whether one space separates two pieces on one line. `between` is what the author wrote
/// there: where the language does not decide (a word before `(` or `[` is a call or an
/// index, or a keyword before a group), the author's choice is kept.
fn spaced(
    prev: Piece,
    cur: Piece,
    prefix: bool,
    conditionals: &[usize],
    depth: usize,
    between: &str,
) -> bool {
    if matches!(prev, Piece::Comment(_)) || matches!(cur, Piece::Comment(_)) {
        return true;
    }
    let (p, c) = (prev.punct(), cur.punct());
    if p == Some(":") || p == Some(",") || p == Some(";") {
        return true;
    }
    if c == Some(":") {
        return conditionals.last() == Some(&depth);
    }
    if matches!(c, Some("," | ";" | ")" | "]" | "." | "?.")) {
        return false;
    }
    if matches!(p, Some("(" | "[" | "." | "?.")) {
        return false;
    }
    if matches!(p, Some("-" | "!")) && prefix {
        return false;
    }
    if p == Some("{") {
        return c != Some("}");
    }
    if c == Some("}") || c == Some("{") {
        return true;
    }
    if c == Some("-") {
        return true;
    }
    if p == Some("-") {
        return true;
    }
    if p.is_some_and(|p| SPACED.contains(&p)) || c.is_some_and(|c| SPACED.contains(&c)) {
        return true;
    }
    if c == Some("!") {
        return true;
    }
    if matches!(c, Some("(" | "[")) {
        if prev.word().is_some() {
            return !between.is_empty();
        }
        return !prev.ends_operand();
    }
    // Words and literals side by side.
    true
}

#[cfg(test)]
mod tests {
    use super::format;

    fn fmt(source: &str) -> String {
        match format(source) {
            Ok(out) => out,
            Err(e) => panic!("{e}: {source}"),
        }
    }

    #[test]
    fn indentation_and_spacing_are_canonical() {
        let source = "entity   Order{\n  table:\"orders\"\n id : uuid primary\n\n\n  total:float\n}\njob   Nightly {\nschedule: \"0 2 * * *\"\nsteps {\n  load { query: select Order where total>=10*2 and total-1 < -3 limit 5 as:rows }\n  tell{ log :\"{{count(rows)}} rows\" }\n}\n}\n";
        assert_eq!(
            fmt(source),
            "entity Order {\n    table: \"orders\"\n    id: uuid primary\n\n    total: float\n}\njob Nightly {\n    schedule: \"0 2 * * *\"\n    steps {\n        load { query: select Order where total >= 10 * 2 and total - 1 < -3 limit 5 as: rows }\n        tell { log: \"{{count(rows)}} rows\" }\n    }\n}\n"
        );
    }

    #[test]
    fn comments_are_kept_where_they_were() {
        let source = "// head\n\n\n\njob A { // trailing\n      /* block\n   kept as written */\n  steps { s { log: \"x\" } }   // after\n}\n// tail\n";
        assert_eq!(
            fmt(source),
            "// head\n\njob A { // trailing\n    /* block\n   kept as written */\n    steps { s { log: \"x\" } } // after\n}\n// tail\n"
        );
    }

    #[test]
    fn brackets_opened_on_one_line_indent_once_close_on_their_own_line_and_conditionals_keep_their_colon_spaced(
    ) {
        let source =
            "job A {\nsteps {\n s {\n  log: f({\n a: [\n1, 2],\n b: x ? y : z\n  })\n }\n }\n}\n";
        assert_eq!(
            fmt(source),
            "job A {\n    steps {\n        s {\n            log: f({\n                a: [\n                    1, 2\n                ],\n                b: x ? y : z\n            })\n        }\n    }\n}\n"
        );
    }

    #[test]
    fn calls_indexes_and_keywords_keep_the_authors_choice() {
        let source = "job A { trigger: on(Ev) steps { s { action: upsert E { a: xs[0] } on [a] when: !done && - n < 0 } } }\n";
        assert_eq!(
            fmt(source),
            "job A { trigger: on(Ev) steps { s { action: upsert E { a: xs[0] } on [a] when: !done && -n < 0 } } }\n"
        );
    }

    #[test]
    fn a_file_that_does_not_parse_is_not_formatted() {
        assert!(matches!(
            format("job A { steps { s { log: } }"),
            Err(super::FormatError::Syntax(_))
        ));
    }

    #[test]
    fn conditions_on_items_are_spaced_like_operators() {
        assert_eq!(
            fmt("job A { steps { s { compute: filter(rows, r->r.total>-1) } } }\n"),
            "job A { steps { s { compute: filter(rows, r -> r.total > -1) } } }\n"
        );
    }

    /// The README's examples are what `codeai fmt` writes, so that formatting a file made of
    /// them changes nothing the reader copied. A block is a file, steps, or a step's fields
    /// (each formatted inside the smallest wrapper that parses); a line `…` separates parts.
    #[test]
    fn the_readmes_examples_are_formatted() {
        let readme = include_str!("../../README.md");
        let mut blocks = Vec::new();
        let mut lines = readme.lines();
        while let Some(line) = lines.next() {
            if line.trim_start() == "```codeai" {
                let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
                blocks.push(body);
            }
        }
        assert!(blocks.len() >= 10, "{} codeai blocks", blocks.len());
        let mut wrong = Vec::new();
        for block in &blocks {
            for part in block.split(|l| l.trim() == "…") {
                let text = part.join("\n");
                if text.trim().is_empty() {
                    continue;
                }
                match canonical(&text) {
                    Some(formatted) if formatted == text => {}
                    Some(formatted) => wrong.push(format!(
                        "--- README.md\n{text}\n--- codeai fmt\n{formatted}"
                    )),
                    None => wrong.push(format!(
                        "--- README.md (not a file, steps or a step's fields)\n{text}"
                    )),
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    }

    /// `part` as `codeai fmt` writes it: as a file, or as the steps of a job, or as the fields
    /// of a step.
    fn canonical(part: &str) -> Option<String> {
        let wrappers = [
            ("", "", 0),
            ("job W {\n    steps {\n", "\n    }\n}\n", 2),
            (
                "job W {\n    steps {\n        s {\n",
                "\n        }\n    }\n}\n",
                3,
            ),
        ];
        for (open, close, depth) in wrappers {
            let indent = super::INDENT.repeat(depth);
            let body: Vec<String> = part
                .lines()
                .map(|l| match l.is_empty() {
                    true => String::new(),
                    false => format!("{indent}{l}"),
                })
                .collect();
            let wrapped = format!("{open}{}{close}", body.join("\n"));
            let Ok(out) = format(&wrapped) else {
                continue;
            };
            let lines: Vec<&str> = out.lines().collect();
            let (skip, keep) = (
                open.lines().count(),
                lines.len() - close.trim().lines().count(),
            );
            let inner: Vec<&str> = lines[skip..keep]
                .iter()
                .map(|l| l.strip_prefix(indent.as_str()).unwrap_or(l))
                .collect();
            return Some(inner.join("\n"));
        }
        None
    }

    #[test]
    fn formatting_is_a_fixed_point() {
        let sources = [
            include_str!("../../examples/05-scheduled-jobs/scheduled-jobs.codeai"),
            include_str!("../../examples/06-saas-jobs/saas-jobs.codeai"),
        ];
        for source in sources {
            let once = fmt(source);
            assert_eq!(fmt(&once), once);
        }
    }
}
