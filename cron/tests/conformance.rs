//! Conformance table for `CronExpr::next_after` / `iter_after`.
//!
//! The expected fire times in `tests/conformance.json` do **not** come from this crate. They are
//! computed by `tests/gen_conformance.py`: a brute-force reference (a minute-by-minute walk over
//! UTC instants, converted to wall-clock time with Python's standard `zoneinfo`, matching the
//! fields with Vixie cron semantics and implementing the crate's DST rules explicitly), each
//! case cross-checked with the `croniter` and `cronsim` packages. A case's `source` names the
//! references that agree with the brute force (`croniter+cronsim`, `croniter`, `cronsim`), or
//! is `bruteforce` when neither does; a disagreeing reference's answer is kept under its name.
//!
//! Regenerate from the repository root with:
//!
//! ```text
//! pip install --user croniter cronsim   # or: pip install --break-system-packages croniter cronsim
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
    pins: Vec<String>,
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
    /// The DST rule the case pins (one of `Table::pins`), if any.
    #[serde(default)]
    pin: Option<String>,
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

/// The DST rules of the crate docs, each pinned by cases in the table, and whether the pinned
/// expressions are fixed-time (which is what each rule is about).
const PINS: [(&str, bool); 10] = [
    ("gap-fixed", true),
    ("gap-fixed-collapses", true),
    ("gap-star-hour", false),
    ("gap-all-24-hours", false),
    ("gap-star-minute", false),
    ("overlap-fixed", true),
    ("overlap-fixed-second-pass", true),
    ("overlap-star-minute-hour-range", false),
    ("overlap-star-hour", false),
    ("overlap-all-24-hours", false),
];

#[test]
fn every_dst_rule_is_pinned_in_three_zones() {
    let table = load();
    let names: Vec<&str> = PINS.iter().map(|(name, _)| *name).collect();
    assert_eq!(table.pins, names);
    for (pin, fixed) in PINS {
        for zone in ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe"] {
            let cases: Vec<&Case> = table
                .cases
                .iter()
                .filter(|c| c.pin.as_deref() == Some(pin) && c.tz == zone)
                .collect();
            assert!(!cases.is_empty(), "no {pin} case in {zone}");
            for case in cases {
                let expr = CronExpr::parse(&case.expr).expect("pinned expression parses");
                assert_eq!(expr.is_fixed_time(), fixed, "case {} ({pin})", case.id);
            }
        }
    }
    for case in &table.cases {
        if let Some(pin) = &case.pin {
            assert!(
                names.contains(&pin.as_str()),
                "case {}: unknown pin {pin}",
                case.id
            );
        }
    }
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
        assert!(matches!(
            case.source.as_str(),
            "croniter+cronsim" | "croniter" | "cronsim" | "bruteforce"
        ));
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
