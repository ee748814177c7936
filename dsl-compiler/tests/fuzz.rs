//! The parser, checker and formatter never panic: random text and mutations of the example
//! always give a result or diagnostics, with every diagnostic span inside the input and on
//! character boundaries; what formats keeps its tokens and is a fixed point.
//!
//! The number of cases comes from `CODEAI_FUZZ_CASES` (default 2000 to keep CI fast);
//! `cargo xtask fuzz 100000` runs a long session in release mode.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const EXAMPLE: &str = include_str!("../../examples/05-scheduled-jobs/scheduled-jobs.codeai");

/// Grammar tokens worth inserting: they push the parser into every branch.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ":",
    ",",
    ".",
    "\"",
    "?",
    "??",
    "=",
    "==",
    "<",
    "every 5m",
    "5x",
    "30d",
    "job",
    "entity",
    "steps",
    "select",
    "where",
    "order by",
    "limit",
    "set",
    "query:",
    "action:",
    "for_each:",
    "\n",
    "//",
    "/*",
    "\u{e9}",
    "\u{1F600}",
    "retry: 3 times",
    "emit(",
    "{{",
    "}}",
    "\\u{",
    "-",
    "not",
    "and",
    "9999999999999999999999",
    "->",
    "=>",
    "r -> r.",
    "filter(rows, ",
    "find(",
    "lambda x:",
];

fn cases() -> u32 {
    std::env::var("CODEAI_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete { at: usize, len: usize },
    Insert { at: usize, token: usize },
    SwapLines { a: usize, b: usize },
    Truncate { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, token)| Mutation::Insert { at, token }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines { a, b }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
    ]
}

fn boundary(s: &str, at: usize) -> usize {
    let mut i = at % (s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(source: &str, mutations: &[Mutation]) -> String {
    let mut s = source.to_string();
    for m in mutations {
        match *m {
            Mutation::Delete { at, len } => {
                let start = boundary(&s, at);
                let end = boundary(&s, (start + len).min(s.len()));
                s.replace_range(start..end.max(start), "");
            }
            Mutation::Insert { at, token } => {
                let at = boundary(&s, at);
                s.insert_str(at, TOKENS[token]);
            }
            Mutation::SwapLines { a, b } => {
                let mut lines: Vec<&str> = s.lines().collect();
                if !lines.is_empty() {
                    let (a, b) = (a % lines.len(), b % lines.len());
                    lines.swap(a, b);
                }
                s = lines.join("\n");
            }
            Mutation::Truncate { at } => {
                let at = boundary(&s, at);
                s.truncate(at);
            }
        }
    }
    s
}

fn assert_sane(source: &str) {
    let diagnostics = codeai_dsl::check_source(source);
    for d in &diagnostics {
        assert!(d.span.start <= d.span.end, "{d:?}");
        assert!(d.span.end <= source.len(), "{d:?} beyond {}", source.len());
        assert!(
            source.is_char_boundary(d.span.start) && source.is_char_boundary(d.span.end),
            "{d:?}"
        );
        assert!(!d.message.is_empty());
        // Rendering never panics either.
        let _ = codeai_dsl::diagnostic::render("fuzz.codeai", source, d);
    }
    // The formatter refuses what does not parse, never changes a token of what does, and
    // formats its own output to itself.
    use codeai_dsl::format::{format, FormatError};
    match format(source) {
        Ok(out) => match format(&out) {
            Ok(again) => assert_eq!(again, out, "not a fixed point:\n{source}"),
            Err(e) => panic!("its own output: {e}\n{out}"),
        },
        Err(FormatError::Syntax(_)) => {}
        Err(e) => panic!("{e}:\n{source}"),
    }
}

#[test]
fn random_text_never_panics() {
    let mut runner = TestRunner::new(Config {
        cases: cases() / 2,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&any::<String>(), |s| {
            assert_sane(&s);
            Ok(())
        })
        .unwrap();
}

#[test]
fn mutated_example_never_panics() {
    let mut runner = TestRunner::new(Config {
        cases: cases() / 2,
        failure_persistence: None,
        ..Config::default()
    });
    let started = std::time::Instant::now();
    runner
        .run(&prop::collection::vec(mutation(), 1..8), |mutations| {
            assert_sane(&apply(EXAMPLE, &mutations));
            Ok(())
        })
        .unwrap();
    eprintln!("{} mutated cases in {:?}", cases() / 2, started.elapsed());
}
