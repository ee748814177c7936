//! Conformance table for `CronExpr::next_after` / `iter_after`.
//!
//! The expected fire times in `tests/conformance.json` do **not** come from this crate. They are
//! computed by `tests/gen_conformance.py` with two independent Python sources: the `croniter`
//! package and a brute-force reference (a minute-by-minute walk over UTC instants, converted to
//! wall-clock time with the standard library's `zoneinfo`, matching the fields with Vixie cron
//! semantics and implementing the crate's DST rules explicitly). Each case records its `source`:
//! `croniter` when both agree, `bruteforce` when they disagree and the brute force (the crate's
//! documented rules) is used, with croniter's answer kept under `croniter`.
//!
//! Regenerate from the repository root with:
//!
//! ```text
//! pip install --user croniter   # or: pip install --break-system-packages croniter
//! python3 cron/tests/gen_conformance.py
//! ```
//!
//! See `tests/README.md` for details.

use chrono::{DateTime, Utc};
use codeai_cron::{CronExpr, Schedule, Tz};
use serde::Deserialize;

#[derive(Deserialize)]
struct Table {
    case_count: usize,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    id: usize,
    expr: String,
    tz: String,
    after: String,
    expected: Vec<String>,
    source: String,
}

fn instant(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("bad instant {text:?} in the table: {e}"))
        .with_timezone(&Utc)
}

fn load() -> Table {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance.json");
    let text = std::fs::read_to_string(path).expect("read tests/conformance.json");
    serde_json::from_str(&text).expect("parse tests/conformance.json")
}

#[test]
fn conformance_table() {
    let table = load();
    assert_eq!(table.case_count, table.cases.len());
    assert!(
        table.cases.len() >= 250,
        "the table must have at least 250 cases"
    );
    let mut failures = Vec::new();
    for case in &table.cases {
        assert!(matches!(case.source.as_str(), "croniter" | "bruteforce"));
        let expr = CronExpr::parse(&case.expr)
            .unwrap_or_else(|e| panic!("case {}: {:?} does not parse: {e}", case.id, case.expr));
        let tz: Tz = case
            .tz
            .parse()
            .unwrap_or_else(|e| panic!("case {}: unknown zone {:?}: {e}", case.id, case.tz));
        let after = instant(&case.after);
        let expected: Vec<DateTime<Utc>> = case.expected.iter().map(|t| instant(t)).collect();
        let got: Vec<DateTime<Utc>> = expr.iter_after(after, tz).take(expected.len()).collect();
        let schedule = Schedule::Cron { expr, tz };
        let via_schedule: Vec<DateTime<Utc>> =
            schedule.iter_after(after).take(expected.len()).collect();
        if got != expected || via_schedule != expected {
            failures.push(format!(
                "case {} `{}` in {} after {} ({}):\n  expected {:?}\n  got      {:?}",
                case.id,
                case.expr,
                case.tz,
                case.after,
                case.source,
                case.expected,
                got.iter().map(|t| t.to_rfc3339()).collect::<Vec<_>>()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} conformance cases failed:\n{}",
        failures.len(),
        table.cases.len(),
        failures.join("\n")
    );
}
