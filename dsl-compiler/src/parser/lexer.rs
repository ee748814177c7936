//! The lexer: source text → tokens with byte spans, built from nom combinators over a
//! `nom_locate` span. It never fails: a character it cannot read becomes a diagnostic and is
//! skipped, so the parser always gets a token stream ending in [`TokKind::Eof`].

use crate::ast::Span;
use crate::diagnostic::Diagnostic;
use nom::bytes::complete::{tag, take_while, take_while1};
use nom::character::complete::{char, digit1};
use nom::combinator::{opt, recognize};
use nom::sequence::pair;
use nom::{IResult, Parser};
use nom_locate::LocatedSpan;

type In<'a> = LocatedSpan<&'a str>;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokKind {
    Ident(String),
    Int(i64),
    Float(f64),
    /// A duration literal in milliseconds.
    Duration(u64),
    Str(String),
    /// Punctuation and operators, e.g. `{`, `==`, `??`.
    Punct(&'static str),
    /// A malformed literal (`5x`, a number too large): already reported by the lexer, so the
    /// parser fails on it without a second message.
    Error,
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tok {
    pub(crate) kind: TokKind,
    pub(crate) span: Span,
    /// The token is the first one on its line: the parser resynchronises at such tokens.
    pub(crate) line_start: bool,
}

impl Tok {
    /// The token as a person would quote it in a message.
    pub(crate) fn describe(&self, source: &str) -> String {
        match &self.kind {
            TokKind::Eof => "end of file".to_string(),
            TokKind::Str(_) => "a string".to_string(),
            _ => {
                let text = source.get(self.span.range()).unwrap_or("?");
                let short: String = text.chars().take(40).collect();
                format!("`{short}`")
            }
        }
    }
}

/// Longest first, so that `==` wins over `=`.
const PUNCTS: &[&str] = &[
    "??", "?.", "==", "!=", "<=", ">=", "&&", "||", "->", "{", "}", "(", ")", "[", "]", ":", ",",
    ".", "?", "=", "<", ">", "+", "-", "*", "/", "%", "!", ";",
];

const UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

pub(crate) fn lex(source: &str, diagnostics: &mut Vec<Diagnostic>) -> Vec<Tok> {
    lex_keeping_comments(source, diagnostics, &mut Vec::new())
}

/// [`lex`], and the span of every comment (`// …` without its newline, `/* … */` whole) in
/// `comments`, in source order: the formatter puts them back.
pub(crate) fn lex_keeping_comments(
    source: &str,
    diagnostics: &mut Vec<Diagnostic>,
    comments: &mut Vec<Span>,
) -> Vec<Tok> {
    let mut tokens = Vec::new();
    let mut input = In::new(source);
    let mut line_start = true;
    loop {
        // Whitespace and comments.
        let (rest, saw_newline) = skip_trivia(input, diagnostics, comments);
        input = rest;
        line_start |= saw_newline;
        let start = input.location_offset();
        if input.fragment().is_empty() {
            tokens.push(Tok {
                kind: TokKind::Eof,
                span: Span::new(start, start),
                line_start: true,
            });
            return tokens;
        }
        match token(input, diagnostics) {
            Some((rest, kind)) => {
                let end = rest.location_offset();
                tokens.push(Tok {
                    kind,
                    span: Span::new(start, end),
                    line_start,
                });
                line_start = false;
                input = rest;
            }
            None => {
                if let Some((rest, text)) = quoted_otherwise(input.fragment()) {
                    // `'pending'`, `“pending”`: one error, and the string it was meant to be,
                    // so that the rest of the line reads as intended.
                    let end = start + rest;
                    let d = Diagnostic::error(
                        Span::new(start, end),
                        "strings are written in straight double quotes",
                    )
                    .with_hint(format!("write {}", serde_json::Value::String(text.clone())));
                    diagnostics.push(d);
                    tokens.push(Tok {
                        kind: TokKind::Str(text),
                        span: Span::new(start, end),
                        line_start,
                    });
                    line_start = false;
                    input = advance(input, rest);
                    continue;
                }
                let c = input.fragment().chars().next().unwrap_or(' ');
                let end = start + c.len_utf8();
                let shown: String = match c {
                    c if c.is_control() || c.is_whitespace() => c.escape_debug().collect(),
                    c => c.to_string(),
                };
                let d = Diagnostic::error(
                    Span::new(start, end),
                    format!("unexpected character `{shown}`"),
                );
                diagnostics.push(match c {
                    '\'' | '‘' | '’' | '“' | '”' | '`' => {
                        d.with_hint("strings are written in straight double quotes: \"text\"")
                    }
                    '#' => {
                        // The rest of the line is the comment it was meant to be.
                        let line = input.fragment().find('\n').unwrap_or(input.fragment().len());
                        diagnostics.push(
                            d.with_hint("a comment starts with `//` (or is `/* … */`)"),
                        );
                        input = advance(input, line);
                        continue;
                    }
                    '|' => d.with_hint(
                        "there are no filters: call a function, as in `format(x, \"#,##0.00\")` or `upper(s)`",
                    ),
                    _ => d,
                });
                input = advance(input, c.len_utf8());
            }
        }
    }
}

/// A string in quotes other than `"` at the start of `frag` (`'…'`, `‘…’`, `“…”`, `` `…` ``)
/// closed on the same line: its length in bytes with the quotes, and its text.
fn quoted_otherwise(frag: &str) -> Option<(usize, String)> {
    let open = frag.chars().next()?;
    let closers: &[char] = match open {
        '\'' => &['\''],
        '‘' | '’' => &['’', '‘', '\''],
        '“' | '”' => &['”', '“'],
        '`' => &['`'],
        _ => return None,
    };
    let body = &frag[open.len_utf8()..];
    let line = &body[..body.find('\n').unwrap_or(body.len())];
    let close = line.find(closers)?;
    let closer = line[close..].chars().next()?;
    Some((
        open.len_utf8() + close + closer.len_utf8(),
        line[..close].to_string(),
    ))
}

fn advance(input: In<'_>, n: usize) -> In<'_> {
    let n = n.min(input.fragment().len());
    nom::Input::take_from(&input, n)
}

/// Skips spaces, newlines and comments; reports whether a newline was crossed.
fn skip_trivia<'a>(
    mut input: In<'a>,
    diagnostics: &mut Vec<Diagnostic>,
    comments: &mut Vec<Span>,
) -> (In<'a>, bool) {
    let mut newline = false;
    loop {
        let frag = *input.fragment();
        let ws = frag.len() - frag.trim_start().len();
        if ws > 0 {
            newline |= frag[..ws].contains('\n');
            input = advance(input, ws);
            continue;
        }
        if frag.starts_with("//") {
            let len = frag.find('\n').unwrap_or(frag.len());
            let start = input.location_offset();
            comments.push(Span::new(start, start + frag[..len].trim_end().len()));
            input = advance(input, len);
            continue;
        }
        if let Some(body) = frag.strip_prefix("/*") {
            match body.find("*/") {
                Some(i) => {
                    let start = input.location_offset();
                    comments.push(Span::new(start, start + i + 4));
                    newline |= frag[..i + 4].contains('\n');
                    input = advance(input, i + 4);
                }
                None => {
                    let start = input.location_offset();
                    diagnostics.push(
                        Diagnostic::error(Span::new(start, start + 2), "unterminated comment")
                            .with_hint("close it with `*/`"),
                    );
                    input = advance(input, frag.len());
                }
            }
            continue;
        }
        return (input, newline);
    }
}

fn token<'a>(input: In<'a>, diagnostics: &mut Vec<Diagnostic>) -> Option<(In<'a>, TokKind)> {
    let first = input.fragment().chars().next()?;
    if first == '"' {
        return Some(string(input, diagnostics));
    }
    if first.is_ascii_digit() {
        return Some(number(input, diagnostics));
    }
    if first.is_alphabetic() || first == '_' {
        let r: IResult<In<'a>, In<'a>> = recognize(pair(
            take_while1(|c: char| c.is_alphabetic() || c == '_'),
            take_while(|c: char| c.is_alphanumeric() || c == '_'),
        ))
        .parse(input);
        let (rest, word) = r.ok()?;
        return Some((rest, TokKind::Ident(word.fragment().to_string())));
    }
    PUNCTS.iter().find_map(|p| {
        let r: IResult<In<'a>, In<'a>> = tag(*p).parse(input);
        r.ok().map(|(rest, _)| (rest, TokKind::Punct(p)))
    })
}

/// An integer, a float, or a duration (an integer immediately followed by a unit).
fn number<'a>(input: In<'a>, diagnostics: &mut Vec<Diagnostic>) -> (In<'a>, TokKind) {
    let start = input.location_offset();
    let r: IResult<In<'a>, In<'a>> =
        recognize(pair(digit1, opt(pair(char('.'), digit1)))).parse(input);
    let Ok((rest, digits)) = r else {
        return (advance(input, 1), TokKind::Int(0));
    };
    let text = *digits.fragment();
    let unit: IResult<In<'a>, In<'a>> =
        take_while(|c: char| c.is_alphanumeric() || c == '_').parse(rest);
    let (after_unit, unit) = unit.unwrap_or((rest, advance(rest, 0)));
    let unit = *unit.fragment();
    let end = after_unit.location_offset();
    if unit.is_empty() {
        if text.contains('.') {
            return (rest, TokKind::Float(text.parse().unwrap_or(0.0)));
        }
        return match text.parse::<i64>() {
            Ok(n) => (rest, TokKind::Int(n)),
            Err(_) => {
                diagnostics.push(Diagnostic::error(
                    Span::new(start, end),
                    format!("number `{text}` is too large"),
                ));
                (rest, TokKind::Error)
            }
        };
    }
    match UNITS.iter().find(|(u, _)| *u == unit) {
        Some((_, factor)) if !text.contains('.') => {
            match text
                .parse::<u64>()
                .ok()
                .and_then(|n| n.checked_mul(*factor))
            {
                Some(ms) => (after_unit, TokKind::Duration(ms)),
                None => {
                    diagnostics.push(Diagnostic::error(
                        Span::new(start, end),
                        format!("duration `{text}{unit}` is too large"),
                    ));
                    (after_unit, TokKind::Error)
                }
            }
        }
        Some(_) => {
            diagnostics.push(
                Diagnostic::error(
                    Span::new(start, end),
                    format!("duration `{text}{unit}` has a fraction"),
                )
                .with_hint("use a smaller unit: `90m` instead of `1.5h`"),
            );
            (after_unit, TokKind::Error)
        }
        None => {
            diagnostics.push(
                Diagnostic::error(
                    Span::new(start, end),
                    format!("invalid duration unit `{unit}` in `{text}{unit}`"),
                )
                .with_hint("durations are written like `100ms`, `30s`, `5m`, `2h` or `7d`"),
            );
            (after_unit, TokKind::Error)
        }
    }
}

/// A double-quoted string with escapes; an unterminated string ends at the end of its line.
fn string<'a>(input: In<'a>, diagnostics: &mut Vec<Diagnostic>) -> (In<'a>, TokKind) {
    let start = input.location_offset();
    let frag = *input.fragment();
    let mut out = String::new();
    let mut chars = frag.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (advance(input, i + 1), TokKind::Str(out)),
            '\n' => break,
            '\\' => {
                let Some((j, e)) = chars.next() else { break };
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '"' => out.push('"'),
                    '\\' => out.push('\\'),
                    'u' => {
                        let rest = &frag[j + 1..];
                        let code = rest
                            .strip_prefix('{')
                            .and_then(|r| r.find('}').map(|k| &r[..k]));
                        match code
                            .and_then(|h| u32::from_str_radix(h, 16).ok())
                            .and_then(char::from_u32)
                        {
                            Some(ch) => {
                                out.push(ch);
                                let skip = code.map(|h| h.len() + 2).unwrap_or(0);
                                for _ in 0..skip {
                                    chars.next();
                                }
                            }
                            None => diagnostics.push(
                                Diagnostic::error(
                                    Span::new(start + i, start + j + 1),
                                    "invalid unicode escape",
                                )
                                .with_hint("write it like `\\u{1F600}`"),
                            ),
                        }
                    }
                    other => diagnostics.push(
                        Diagnostic::error(
                            Span::new(start + i, start + j + other.len_utf8()),
                            format!("unknown escape `\\{}`", other.escape_debug()),
                        )
                        .with_hint("valid escapes are \\\" \\\\ \\n \\t \\r \\u{…}"),
                    ),
                }
            }
            c => out.push(c),
        }
    }
    let line_end = frag.find('\n').unwrap_or(frag.len());
    diagnostics.push(
        Diagnostic::error(Span::new(start, start + 1), "unterminated string")
            .with_hint("close the string with `\"` on the same line"),
    );
    (advance(input, line_end), TokKind::Str(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> (Vec<TokKind>, Vec<String>) {
        let mut d = Vec::new();
        let toks = lex(src, &mut d);
        (
            toks.into_iter().map(|t| t.kind).collect(),
            d.into_iter().map(|d| d.message).collect(),
        )
    }

    #[test]
    fn durations_numbers_and_strings() {
        let (k, d) = kinds(r#"30s 100ms 5m 2h 7d 42 1.5 "a\"b\u{41}""#);
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(
            k,
            vec![
                TokKind::Duration(30_000),
                TokKind::Duration(100),
                TokKind::Duration(300_000),
                TokKind::Duration(7_200_000),
                TokKind::Duration(604_800_000),
                TokKind::Int(42),
                TokKind::Float(1.5),
                TokKind::Str("a\"bA".into()),
                TokKind::Eof
            ]
        );
    }

    #[test]
    fn bad_unit_and_unterminated_string_are_reported() {
        let (_, d) = kinds("5x \"open\nnext");
        assert_eq!(
            d,
            vec![
                "invalid duration unit `x` in `5x`".to_string(),
                "unterminated string".to_string()
            ]
        );
    }

    #[test]
    fn operators_take_the_longest_match() {
        let (k, _) = kinds("a ?? b == c != d <= e");
        let puncts: Vec<_> = k
            .iter()
            .filter_map(|k| match k {
                TokKind::Punct(p) => Some(*p),
                _ => None,
            })
            .collect();
        assert_eq!(puncts, vec!["??", "==", "!=", "<="]);
    }

    #[test]
    fn comments_are_skipped_and_lines_tracked() {
        let mut d = Vec::new();
        let toks = lex("a // c\n/* x\n */ b c", &mut d);
        assert!(d.is_empty());
        let starts: Vec<bool> = toks.iter().map(|t| t.line_start).collect();
        assert_eq!(starts, vec![true, true, false, true]);
    }
}
