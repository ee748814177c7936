//! Typed run input end to end (issue 18, item 5): a job declaring `input: { name: type = default }`
//! registered on a whole host; `POST /jobs/{id}/run` with a valid input runs it with ISO dates
//! turned into the start of those days in the job's timezone and absent fields at their defaults
//! (checked on what the job counted and logged), and every invalid input is refused 422
//! `invalid_input` naming the field, with no execution made — on SQLite and PostgreSQL.

#[macro_use]
mod common;

use codeai_host::store::Database;
use common::test_host::{TestHost, ADMIN};
use common::{run_postgres, run_sqlite};
use serde_json::{json, Value};

on_both_databases!(a_typed_input_is_parsed_defaulted_and_checked_before_anything_runs,);

const SOURCE: &str = r#"
entity TypedOrder {
    table: "typed_orders"
    id: string primary
    created_at: datetime
}

job LoadOrders {
    input: { rows: [] }
    steps {
        each {
            for_each: rows
            action: insert TypedOrder { id: item.id, created_at: item.at }
        }
    }
}

job OrdersInRange {
    timezone: "America/New_York"
    input: {
        start_date: date = "2026-01-03"
        end_date: date = "2026-01-10"
        title: string = "Orders"
        tags: [string] = ["daily"]
        since: datetime = "2026-01-01T00:00:00Z"
        limit: int = 100
        note: string = null
        dry_run: bool
    }
    steps {
        count_them {
            query: count TypedOrder where created_at >= start_date and created_at < end_date + 1d
            as: n
        }
        tell {
            log: "{{title}}: {{n}} from {{start_date}} to {{input.end_date}} tags {{tags}} since {{since}} limit {{limit}} note {{note}} dry {{dry_run}}"
        }
    }
}
"#;

/// The messages of an execution's log.
fn log_of(exec: &Value) -> Vec<String> {
    exec["log"]
        .as_array()
        .unwrap_or_else(|| panic!("no log: {exec}"))
        .iter()
        .map(|l| l["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn a_typed_input_is_parsed_defaulted_and_checked_before_anything_runs(db: Database) {
    let host = TestHost::start(db.clone(), |_| {}).await;
    host.register_source("default", "typed.codeai", SOURCE)
        .await;
    // Orders around New York's days (UTC-5 in January): 2026-01-01 04:59:59Z is still
    // 2025-12-31 there, 2026-01-13 05:00:00Z already the 13th.
    let rows = json!([
        {"id": "dec31-ny", "at": "2026-01-01T04:59:59Z"},
        {"id": "jan01-ny", "at": "2026-01-01T05:00:00Z"},
        {"id": "jan03-ny", "at": "2026-01-04T00:00:00Z"},
        {"id": "jan05", "at": "2026-01-05T12:00:00Z"},
        {"id": "jan12", "at": "2026-01-12T12:00:00Z"},
        {"id": "jan13-ny", "at": "2026-01-13T05:00:00Z"},
    ]);
    // An untyped declaration (`rows: []`) takes any object, as before.
    host.run_completed(ADMIN, "LoadOrders", json!({"rows": rows, "anything": 1}))
        .await;

    // The seed's dates: from the start of 2026-01-01 to the end of 2026-01-12 in New York.
    let done = host
        .run_completed(
            ADMIN,
            "OrdersInRange",
            json!({"start_date": "2026-01-01", "end_date": "2026-01-12", "dry_run": true,
                   "tags": ["x", "y"], "note": "hello", "limit": 7,
                   "since": "2026-01-02T03:04:05+01:00"}),
        )
        .await;
    assert_eq!(
        log_of(&done),
        [
            "Orders: 4 from 2026-01-01T00:00:00-05:00 to 2026-01-12T00:00:00-05:00 tags x, y \
          since 2026-01-02T03:04:05+01:00 limit 7 note hello dry true"
        ],
        "{done}"
    );
    // Absent fields take their defaults (the date literals are days in New York too).
    let done = host
        .run_completed(
            ADMIN,
            "OrdersInRange",
            json!({"dry_run": false, "note": null}),
        )
        .await;
    assert_eq!(
        log_of(&done),
        [
            "Orders: 2 from 2026-01-03T00:00:00-05:00 to 2026-01-10T00:00:00-05:00 tags daily \
          since 2026-01-01T00:00:00Z limit 100 note  dry false"
        ],
        "{done}"
    );
    let runs_before = common::runs_of(&db, "OrdersInRange").await;
    assert_eq!(runs_before, 2);

    // Every input that does not fit is refused before anything is enqueued.
    let refused = [
        (json!({}), "dry_run", "required (bool) and missing"),
        (
            json!({"dry_run": "yes"}),
            "dry_run",
            "expected true or false, got \"yes\"",
        ),
        (
            json!({"dry_run": true, "start_date": "2026-02-30"}),
            "start_date",
            "`2026-02-30` is not an ISO date (YYYY-MM-DD)",
        ),
        (
            json!({"dry_run": true, "start_date": "01/02/2026"}),
            "start_date",
            "`01/02/2026` is not an ISO date (YYYY-MM-DD)",
        ),
        (
            json!({"dry_run": true, "since": "2026-01-02 03:04"}),
            "since",
            "`2026-01-02 03:04` is not an ISO date-time with an offset (like 2026-01-12T06:00:00Z)",
        ),
        (
            json!({"dry_run": true, "limit": 2.5}),
            "limit",
            "expected an integer, got 2.5",
        ),
        (
            json!({"dry_run": true, "tags": ["a", 1]}),
            "tags",
            "item 1: expected a string, got 1",
        ),
        (
            json!({"dry_run": true, "tags": "a"}),
            "tags",
            "expected a list ([string]), got \"a\"",
        ),
        (
            json!({"dry_run": true, "start": "2026-01-01"}),
            "start",
            "not a declared input (the job declares `start_date`, `end_date`, `title`, `tags`, \
             `since`, `limit`, `note`, `dry_run`)",
        ),
    ];
    for (input, field, reason) in refused {
        let (status, body) = host
            .post(
                ADMIN,
                "/jobs/OrdersInRange/run",
                Some(json!({ "input": input })),
            )
            .await;
        assert_eq!(status, 422, "{input}: {body}");
        assert_eq!(body["error"]["code"], "invalid_input", "{input}: {body}");
        assert_eq!(
            body["error"]["message"],
            format!("input `{field}`: {reason}"),
            "{input}"
        );
    }
    // The input sent without its `input` wrapper is refused, naming the field, not taken as
    // an empty input.
    let (status, body) = host
        .post(
            ADMIN,
            "/jobs/OrdersInRange/run",
            Some(json!({ "dry_run": true, "start_date": "2026-01-01" })),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_body", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("unknown field `dry_run`, expected one of `input`, `delay`, `run_at`"),
        "{message}"
    );
    // No execution was made for any of them (the refusal comes before the enqueue).
    assert_eq!(common::runs_of(&db, "OrdersInRange").await, runs_before);
    host.stop().await;
}
