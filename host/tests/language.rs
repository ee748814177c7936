//! The job language's constructs end to end: a `.codeai` source compiled by `codeai_dsl`, its
//! components run for real by the executor (the sandboxed runtime, the platform's capabilities)
//! against a database — on SQLite and on PostgreSQL. Each scenario checks what the job did (rows,
//! the recorded status, error and log), not how it is lowered (the compiler's and the
//! interpreter's own tests do that).

#[macro_use]
mod common;
use common::peers::HttpPeer;
use common::{run_postgres, run_sqlite};

use codeai_host::executor::{Executor, Recorded};
use codeai_host::runtime::{Runtime, RuntimeConfig, Status};
use codeai_host::services::{Services, ServicesConfig};
use codeai_host::store::{demo, entities, migrate, Database};
use codeai_ir::EntityDecl;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

on_both_databases!(
    declared_actions_and_for_each_blocks_do_their_work,
    when_skips_steps_and_fail_and_skip_end_the_job,
    a_wrong_shaped_response_fails_the_sync_with_the_missing_path,
    filters_compare_fields_compute_and_apply_functions,
    an_upsert_inserts_new_keys_and_updates_known_ones,
    aggregates_bind_one_row_or_their_groups,
    a_paginated_sync_follows_the_cursor_to_the_last_page,
    a_select_pages_with_offset_in_its_order,
    a_template_computes_over_its_data_and_shows_its_table,
    the_saas_example_signs_up_expires_syncs_and_sums_for_real,
    an_event_payload_that_does_not_fit_its_declaration_fails_the_emit,
);

const SOURCE: &str = r#"
entity Stock {
    table: "lang_stock"
    id: uuid primary
    sku: string
    quantity: int
    reorder_level: int
    note: string optional
    received: date optional
    seen_at: datetime optional
}

event Restocked { sku: string }
event Late { sku: string, days: int }

// The build sees a number; the host sees 2.5 days where the event wants a whole number.
job EmitLate {
    steps {
        late { emit: Late { sku: "A", days: 10 / 4 } }
    }
}

entity Price {
    table: "lang_prices"
    id: uuid primary
    sku: string unique
    amount: float
    note: string optional
}

// A sync whose windows overlap: a price seen again updates its row.
job SyncPrices {
    input: { prices: [] }
    steps {
        save {
            for_each: prices
            item: p
            action: upsert Price { sku: p.sku, amount: p.amount } on [sku]
        }
    }
}

job Totals {
    steps {
        overall {
            query: aggregate Stock { skus: count(), units: sum(quantity), mean: avg(quantity), fewest: min(quantity) }
            as: overall
        }
        by_level {
            query: aggregate Stock { skus: count(), units: sum(quantity) } where quantity <= reorder_level group by reorder_level order by units desc limit 5
            as: by_level
        }
        report { log: "{{overall.skus}} skus, {{overall.units}} units; {{count(by_level)}} levels low" }
    }
}

// A template computes over its data's fields; the table shows in the message with its rows.
template stock_note {
    subject: "{{count(rows)}} skus, {{format(sum(rows, \"quantity\") / 2, \"0.0\")}} pairs"
    body: "First {{lower(rows[0].sku)}}, last {{rows[2]?.sku}}."
    table: rows { sku: "SKU"  quantity: "Units" decimal(1) }
}

job StockNote {
    steps {
        rows { query: select Stock order by sku as: rows }
        tell { send: email("ops@example.com") { template: "stock_note" data: { rows: rows } } }
    }
}

// Pages of two by sku: the page number comes with the run (typed input).
job StockPage {
    input: { page: int = 0 }
    steps {
        rows { query: select Stock order by sku limit 2 offset page * 2 as: rows }
        out { compute: pluck(rows, "sku") as: skus }
    }
}

integration Billing {
    base_url: env("BILLING_URL")
    timeout: 5s

    invoices: GET "/v1/invoices" { cursor: string }
}

entity Invoice {
    table: "lang_invoices"
    id: uuid primary
    number: string unique
    amount: float
}

// A billing API that pages with a cursor: every page followed, each invoice upserted.
job SyncInvoices {
    steps {
        fetch {
            call: Billing.invoices
            paginate: { next: page.next, param: "cursor", items: page.data, max_pages: 10 }
            as: invoices
        }
        save {
            for_each: invoices
            item: inv
            action: upsert Invoice { number: inv.number, amount: inv.amount } on [number]
        }
        report { log: "{{count(invoices)}} invoices" }
    }
}

job NotePrice {
    steps {
        note { action: update Price set note = "checked" where sku = "A" }
    }
}

// The seed's snippet: `for_each: items … action: process_item(item)`.
action process_item(item) {
    steps {
        add {
            action: insert Stock { sku: item.sku, quantity: item.quantity, reorder_level: default(item.reorder, 5) }
        }
        announce {
            emit: Restocked { sku: item.sku }
            when: item.quantity > 0
        }
    }
}

job Load {
    input: { items: [] }
    steps {
        process_items {
            for_each: items
            parallel: 10
            action: process_item(item)
        }
    }
}

job Annotate {
    steps {
        low {
            query: select Stock order by sku
            as: rows
        }
        mark {
            for_each: rows
            item: row
            steps {
                label {
                    compute: row.quantity <= row.reorder_level ? "reorder" : "ok"
                    as: label
                }
                save {
                    action: update Stock set note = label where id = row.id
                    when: label = "reorder"
                }
            }
        }
    }
}

job Stamp {
    steps {
        received { action: update Stock set received = "2026-03-15" where sku = "A" }
        seen { action: update Stock set seen_at = "2026-03-15T23:30:00+02:00" where sku = "C" }
    }
}

job Filters {
    input: { wanted: "a" }
    steps {
        at_or_below { query: select Stock where quantity <= reorder_level order by sku  as: low }
        computed { query: select Stock where quantity * 2 > reorder_level + 1 order by sku  as: doubled }
        lowered { query: select Stock where lower(sku) = wanted  as: lowered }
        short { query: count Stock where length(sku) = 1 and quantity - reorder_level < 0  as: short }
        halves { query: count Stock where quantity / 2 >= 4.5  as: halves }
        dated { query: select Stock where year(received) = 2026 and month(received) = 3 and day(received) = 15  as: dated }
        hours { query: select Stock where hour(seen_at) = 21 and day(seen_at) = 15  as: hours }
        result {
            compute: {
                low: pluck(low, "sku"), doubled: pluck(doubled, "sku"), lowered: pluck(lowered, "sku"),
                short: short, halves: halves, dated: pluck(dated, "sku"), hours: pluck(hours, "sku")
            }
            as: result
        }
    }
}

job Guarded {
    input: { mode: "run" }
    steps {
        count_rows {
            query: count Stock
            as: n
        }
        nothing_to_do {
            action: skip("no stock rows")
            when: n = 0
        }
        refuse {
            action: fail("mode {{mode}} is not allowed")
            when: mode = "forbidden"
        }
        quiet {
            log: "verbose: {{n}} rows"
            when: mode = "verbose"
        }
        done {
            compute: n
            as: total
        }
    }
}
"#;

/// The jobs of `source` by name, as components.
fn components(file: &str, source: &str) -> BTreeMap<String, Vec<u8>> {
    let (artifacts, _) = codeai_dsl::compile(file, source).unwrap_or_else(|e| {
        panic!(
            "the source does not compile:\n{}",
            codeai_dsl::diagnostic::render_all(file, source, &e.diagnostics)
        )
    });
    artifacts.into_iter().map(|a| (a.name, a.bytes)).collect()
}

struct World {
    db: Database,
    executor: Executor,
    jobs: BTreeMap<String, Vec<u8>>,
    dir: std::path::PathBuf,
}

impl World {
    async fn new(
        db: Database,
        jobs: BTreeMap<String, Vec<u8>>,
        entities: &[EntityDecl],
        vars: BTreeMap<String, String>,
    ) -> World {
        migrate::migrate_up(&db).await.unwrap();
        entities::create_entity_tables(&db, "default", entities)
            .await
            .unwrap();
        let dir = std::env::temp_dir().join(common::unique("codeai_language"));
        let runtime = Runtime::new(RuntimeConfig {
            cache_dir: dir.join("cache"),
            pool_size: 4,
            ..RuntimeConfig::default()
        })
        .unwrap();
        let env: codeai_host::services::Env = Arc::new(move |k| vars.get(k).cloned());
        let mut config = ServicesConfig::local(dir.join("reports"), env);
        // Integrations are fake peers on loopback.
        config.egress.operator = "127.0.0.1/32".parse().unwrap();
        World {
            executor: Executor::new(runtime, Services::new(db.clone(), config)),
            db,
            jobs,
            dir,
        }
    }

    /// A world with the jobs and entities of [`SOURCE`].
    async fn of_source(db: Database) -> World {
        let entities = source_world_entities();
        World::new(
            db,
            components("lang.codeai", SOURCE),
            &entities,
            BTreeMap::new(),
        )
        .await
    }

    /// Runs `Load` with rows A (2 of 3), B (0 of the default 5) and C (9 of 4), as `quantity`
    /// of `reorder_level`; it must complete.
    async fn load_stock(&self) -> Recorded {
        let items = json!({ "items": [
            { "sku": "A", "quantity": 2, "reorder": 3 },
            { "sku": "B", "quantity": 0 },
            { "sku": "C", "quantity": 9, "reorder": 4 },
        ]});
        self.completed("Load", items).await
    }

    /// Runs `job`, which must complete.
    async fn completed(&self, job: &str, input: Value) -> Recorded {
        let r = self.run(job, input).await;
        assert_eq!(
            r.result.status,
            Status::Completed,
            "{job}: {:?}",
            r.result.error
        );
        r
    }

    async fn run(&self, job: &str, input: Value) -> Recorded {
        let bytes = &self.jobs[job];
        let prepared = self.executor.runtime().prepare(bytes).unwrap();
        let input = input.to_string();
        self.executor
            .run(
                &prepared,
                common::fixtures::one_attempt(job, "test", &input),
            )
            .await
            .unwrap()
    }

    async fn texts(&self, sql: &str) -> Vec<String> {
        common::column::<String>(&self.db, sql, &[]).await
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn source_world_entities() -> Vec<EntityDecl> {
    let (artifacts, _) = codeai_dsl::compile("lang.codeai", SOURCE).unwrap();
    entities::declared_by(artifacts.iter().map(|a| &a.manifest))
}

#[track_caller]
fn assert_logged(r: &Recorded, line: &str) {
    let logs = &r.result.logs;
    assert!(logs.iter().any(|l| l.message == line), "{logs:?}");
}

async fn declared_actions_and_for_each_blocks_do_their_work(db: Database) {
    let w = World::of_source(db).await;
    // `Load` declares the data and events capabilities its action uses.
    let load = codeai_dsl::compile("lang.codeai", SOURCE).unwrap().0;
    let load = load.iter().find(|a| a.name == "Load").unwrap();
    assert_eq!(load.manifest.capabilities, ["data", "events", "log"]);

    let r = w.load_stock().await;
    let rows = w
        .texts("SELECT sku || ':' || CAST(quantity AS TEXT) || ':' || CAST(reorder_level AS TEXT) FROM lang_stock ORDER BY sku")
        .await;
    assert_eq!(rows, ["A:2:3", "B:0:5", "C:9:4"]);
    // The action's `when:` held for A and C only.
    let events = w
        .texts("SELECT payload FROM events WHERE name = 'Restocked' ORDER BY payload")
        .await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events[0].contains("\"A\"") && events[1].contains("\"C\""),
        "{events:?}"
    );
    assert_logged(
        &r,
        "step `announce` skipped: `when: item.quantity > 0` does not hold",
    );

    // Several steps per item: the second sees the first's binding.
    w.completed("Annotate", json!({})).await;
    let notes = w
        .texts("SELECT sku || ':' || COALESCE(note, '-') FROM lang_stock ORDER BY sku")
        .await;
    assert_eq!(notes, ["A:reorder", "B:reorder", "C:-"]);
}

async fn when_skips_steps_and_fail_and_skip_end_the_job(db: Database) {
    let w = World::of_source(db).await;
    // No rows: `skip(…)` ends the job as skipped, with its reason.
    let r = w.run("Guarded", json!({})).await;
    assert_eq!(r.result.status, Status::Skipped, "{:?}", r.result.error);
    assert_eq!(r.result.error.as_deref(), Some("no stock rows"));

    w.completed("Load", json!({ "items": [{ "sku": "A", "quantity": 1 }] }))
        .await;

    // A condition that does not hold skips its step and says why; the job completes.
    let r = w.completed("Guarded", json!({ "mode": "run" })).await;
    assert_logged(
        &r,
        "step `refuse` skipped: `when: mode = \"forbidden\"` does not hold",
    );
    assert!(
        !r.result
            .logs
            .iter()
            .any(|l| l.message.starts_with("verbose")),
        "{:?}",
        r.result.logs
    );
    let output: Value = serde_json::from_str(r.result.output.as_deref().unwrap()).unwrap();
    assert_eq!(output["total"], json!(1));

    let r = w.completed("Guarded", json!({ "mode": "verbose" })).await;
    assert_logged(&r, "verbose: 1 rows");

    // `fail(…)` fails the job at its step, with its message.
    let r = w.run("Guarded", json!({ "mode": "forbidden" })).await;
    assert_eq!(r.result.status, Status::Failed);
    assert_eq!(r.result.step.as_deref(), Some("refuse"));
    let error = r.result.error.unwrap_or_default();
    assert!(error.ends_with("mode forbidden is not allowed"), "{error}");
}

/// The example's `SyncExternalInventory` against a warehouse that answers with another shape
/// (`{"data": …}` instead of `{"items": …}`): the job fails at `update_products`, naming the
/// missing path and the keys the response has, and neither updates a product nor emits
/// `InventorySynced`.
async fn a_wrong_shaped_response_fails_the_sync_with_the_missing_path(db: Database) {
    let warehouse = HttpPeer::start(|_| {
        (
            200,
            json!({ "data": [{ "sku": "SKU-1002", "quantity": 40 }], "next": null }).to_string(),
        )
    })
    .await;
    let vars = BTreeMap::from([
        ("WAREHOUSE_API_URL".to_string(), warehouse.url.clone()),
        ("WAREHOUSE_API_KEY".to_string(), "wh-secret".to_string()),
    ]);
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/05-scheduled-jobs/scheduled-jobs.codeai"
    );
    let source = std::fs::read_to_string(path).unwrap();
    let w = World::new(
        db,
        components("scheduled-jobs.codeai", &source),
        &demo::example_entities(),
        vars,
    )
    .await;
    let data = codeai_host::store::query::EntityQueries::new(
        w.db.clone(),
        &demo::example_entities(),
        "default",
    )
    .unwrap();
    demo::seed(&data, chrono::Utc::now(), chrono_tz::UTC)
        .await
        .unwrap();
    let before = w
        .texts("SELECT CAST(quantity AS TEXT) FROM products WHERE sku = 'SKU-1002'")
        .await;

    let r = w.run("SyncExternalInventory", json!({})).await;
    assert_eq!(r.result.status, Status::Failed, "{:?}", r.result);
    assert_eq!(r.result.step.as_deref(), Some("update_products"));
    let error = r.result.error.unwrap_or_default();
    assert!(
        error.contains("`inventory.items` is missing: `inventory` has the keys `data`, `next`"),
        "{error}"
    );
    assert_eq!(warehouse.requests().len(), 1);
    let after = w
        .texts("SELECT CAST(quantity AS TEXT) FROM products WHERE sku = 'SKU-1002'")
        .await;
    assert_eq!(before, after);
    let synced = w
        .texts("SELECT name FROM events WHERE name = 'InventorySynced'")
        .await;
    assert!(synced.is_empty(), "{synced:?}");
}

/// `where` clauses beyond `field op value`, compiled to SQL on each database: rows A (2 of 3),
/// B (0 of 5) and C (9 of 4), as `quantity` of `reorder_level`.
async fn filters_compare_fields_compute_and_apply_functions(db: Database) {
    let w = World::of_source(db).await;
    w.load_stock().await;
    w.completed("Stamp", json!({})).await;

    let r = w.completed("Filters", json!({})).await;
    let output: Value = serde_json::from_str(r.result.output.as_deref().unwrap()).unwrap();
    let result = &output["result"];
    // quantity <= reorder_level
    assert_eq!(result["low"], json!(["A", "B"]));
    // quantity * 2 > reorder_level + 1: A 4 > 4 no, B 0 > 6 no, C 18 > 5 yes.
    assert_eq!(result["doubled"], json!(["C"]));
    // lower(sku) = "a"
    assert_eq!(result["lowered"], json!(["A"]));
    // length(sku) = 1 and quantity - reorder_level < 0: A and B.
    assert_eq!(result["short"], json!(2));
    // quantity / 2 >= 4.5 divides as numbers, not integers: C (9 / 2 = 4.5) only.
    assert_eq!(result["halves"], json!(1));
    assert_eq!(result["dated"], json!(["A"]));
    // 23:30 at +02:00 is 21:30 UTC.
    assert_eq!(result["hours"], json!(["C"]));
}

/// The seed's overlapping sync windows: the second run updates A (keeping its id and the note
/// it does not give), inserts C, and nothing fails on the unique key.
async fn an_upsert_inserts_new_keys_and_updates_known_ones(db: Database) {
    let w = World::of_source(db).await;
    let prices = |rows: Value| json!({ "prices": rows });
    let first = prices(json!([{ "sku": "A", "amount": 1.5 }, { "sku": "B", "amount": 2 }]));
    w.completed("SyncPrices", first).await;
    w.completed("NotePrice", json!({})).await;
    let ids = "SELECT sku || ':' || CAST(id AS TEXT) FROM lang_prices ORDER BY sku";
    let before = w.texts(ids).await;

    let again = prices(json!([{ "sku": "A", "amount": 3 }, { "sku": "C", "amount": 4 }]));
    let r = w.completed("SyncPrices", again).await;
    let rows = w
        .texts("SELECT sku || ':' || CAST(amount AS TEXT) || ':' || COALESCE(note, '-') FROM lang_prices ORDER BY sku")
        .await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        rows[0].starts_with("A:3") && rows[0].ends_with(":checked"),
        "{rows:?}"
    );
    assert!(
        rows[1].starts_with("B:2") && rows[2].starts_with("C:4"),
        "{rows:?}"
    );
    assert_eq!(w.texts(ids).await[..2], before[..], "rows keep their ids");
    let calls = &r.result.calls;
    let upserts = calls.iter().filter(|c| c.call == "data.upsert").count();
    assert_eq!(upserts, 2, "{calls:?}");
}

/// A = 2 of 3, B = 0 of 5, C = 9 of 4: three skus, eleven units, two levels at or below.
async fn aggregates_bind_one_row_or_their_groups(db: Database) {
    let w = World::of_source(db).await;
    w.load_stock().await;
    let r = w.completed("Totals", json!({})).await;
    let output: Value = serde_json::from_str(r.result.output.as_deref().unwrap()).unwrap();
    let overall = &output["overall"];
    assert_eq!(
        (&overall["skus"], &overall["units"], &overall["fewest"]),
        (&json!(3), &json!(11), &json!(0)),
        "{output}"
    );
    assert!(
        (overall["mean"].as_f64().unwrap() - 11.0 / 3.0).abs() < 1e-9,
        "{output}"
    );
    assert_eq!(
        output["by_level"],
        json!([
            { "reorder_level": 3, "skus": 1, "units": 2 },
            { "reorder_level": 5, "skus": 1, "units": 0 },
        ])
    );
    assert_logged(&r, "3 skus, 11 units; 2 levels low");
    let calls = &r.result.calls;
    assert_eq!(
        calls.iter().filter(|c| c.call == "data.aggregate").count(),
        2,
        "{calls:?}"
    );
}

async fn a_template_computes_over_its_data_and_shows_its_table(db: Database) {
    let w = World::of_source(db).await;
    w.load_stock().await;
    w.completed("StockNote", json!({})).await;
    let held = w
        .texts("SELECT subject || ' / ' || body FROM outbox WHERE job = 'StockNote'")
        .await;
    assert_eq!(
        held,
        ["3 skus, 5.5 pairs / First a, last C.\n\nSKU | Units\nA | 2.0\nB | 0.0\nC | 9.0"]
    );
}

async fn a_select_pages_with_offset_in_its_order(db: Database) {
    let w = World::of_source(db).await;
    w.load_stock().await;
    let mut pages = Vec::new();
    for page in 0..3 {
        let r = w.completed("StockPage", json!({ "page": page })).await;
        let calls: Vec<String> = r.result.calls.iter().map(|c| c.call.to_string()).collect();
        assert_eq!(calls, ["data.select"], "one read a page");
        let output: Value = serde_json::from_str(r.result.output.as_deref().unwrap()).unwrap();
        pages.push(output["skus"].clone());
    }
    assert_eq!(pages, [json!(["A", "B"]), json!(["C"]), json!([])]);
    // Past the bound, the step fails with the reason (and the way to page instead).
    let r = w.run("StockPage", json!({ "page": 600_000 })).await;
    assert_eq!(r.result.status, Status::Failed);
    let error = r.result.error.unwrap_or_default();
    assert!(
        error.contains("offset 1200000 is beyond 1000000 rows"),
        "{error}"
    );
}

async fn a_paginated_sync_follows_the_cursor_to_the_last_page(db: Database) {
    let billing = HttpPeer::start(|req| {
        let page = match req.target.split_once("cursor=").map(|(_, c)| c) {
            None => json!({ "data": [{ "number": "I-1", "amount": 10 }, { "number": "I-2", "amount": 20 }], "next": "p2" }),
            Some("p2") => json!({ "data": [{ "number": "I-3", "amount": 30 }], "next": "p3" }),
            Some(_) => json!({ "data": [], "next": null }),
        };
        (200, page.to_string())
    })
    .await;
    let vars = BTreeMap::from([("BILLING_URL".to_string(), billing.url.clone())]);
    let entities = source_world_entities();
    let w = World::new(db, components("lang.codeai", SOURCE), &entities, vars).await;
    let r = w.completed("SyncInvoices", json!({})).await;
    assert_logged(&r, "3 invoices");
    let targets: Vec<String> = billing
        .requests()
        .iter()
        .map(|q| q.target.clone())
        .collect();
    assert_eq!(
        targets,
        [
            "/v1/invoices",
            "/v1/invoices?cursor=p2",
            "/v1/invoices?cursor=p3"
        ]
    );
    // The next sync finds the same invoices and writes them again, no duplicate, no failure.
    w.completed("SyncInvoices", json!({})).await;
    let rows = w
        .texts("SELECT number || ':' || CAST(amount AS TEXT) FROM lang_invoices ORDER BY number")
        .await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        rows[0].starts_with("I-1:10") && rows[2].starts_with("I-3:30"),
        "{rows:?}"
    );
}

/// examples/06-saas-jobs end to end on a real database, against a local billing API that
/// pages by cursor and wants its key.
async fn the_saas_example_signs_up_expires_syncs_and_sums_for_real(db: Database) {
    let day = |n: i64| (chrono::Utc::now() - chrono::Duration::days(n)).to_rfc3339();
    let pages = [
        json!({ "data": [
            { "number": "INV-1", "customer_email": "ann@example.com", "plan": "pro", "amount": 49.5, "status": "paid", "issued_at": day(2) },
            { "number": "INV-2", "customer_email": "bo@example.com", "plan": "team", "amount": 199, "status": "paid", "issued_at": day(3) },
        ], "next_cursor": "p2" }),
        json!({ "data": [
            { "number": "INV-3", "customer_email": "cy@example.com", "plan": "pro", "amount": 49.5, "status": "open", "issued_at": day(1) },
            { "number": "INV-4", "customer_email": "ann@example.com", "plan": "pro", "amount": 49.5, "status": "paid", "issued_at": day(30) },
        ], "next_cursor": "p3" }),
        json!({ "data": [
            { "number": "INV-5", "customer_email": "di@example.com", "plan": "team", "amount": 99, "status": "paid", "issued_at": day(4) },
        ], "next_cursor": null }),
    ];
    let billing = HttpPeer::start(move |req| {
        if !req
            .headers
            .iter()
            .any(|(k, v)| k == "authorization" && v == "Bearer bill-key")
        {
            return (401, json!({ "error": "no key" }).to_string());
        }
        let page = match req.target.split_once("cursor=").map(|(_, c)| c) {
            None => 0,
            Some(c) if c.starts_with("p2") => 1,
            Some(_) => 2,
        };
        (200, pages[page].to_string())
    })
    .await;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/06-saas-jobs/saas-jobs.codeai"
    );
    let source = std::fs::read_to_string(path).unwrap();
    let (artifacts, warnings) = codeai_dsl::compile("saas-jobs.codeai", &source).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let entities = entities::declared_by(artifacts.iter().map(|a| &a.manifest));
    let vars = BTreeMap::from([
        ("BILLING_API_URL".to_string(), billing.url.clone()),
        ("BILLING_API_KEY".to_string(), "bill-key".to_string()),
    ]);
    let w = World::new(db, components("saas-jobs.codeai", &source), &entities, vars).await;

    // Sign-ups through the typed input: two trials already over, one running; a second sign-up
    // of the same email updates its account; a sign-up without an email is refused.
    for input in [
        json!({ "email": "ann@example.com", "trial_days": -1 }),
        json!({ "email": "bo@example.com", "plan": "free", "trial_days": -2 }),
        json!({ "email": "cy@example.com" }),
        json!({ "email": "cy@example.com", "plan": "team" }),
    ] {
        w.completed("SignUp", input).await;
    }
    let refused = w.run("SignUp", json!({ "plan": "pro" })).await;
    assert_eq!(refused.result.status, Status::Failed);
    assert!(refused.result.error.unwrap_or_default().contains("email"));
    let accounts = "SELECT email || ':' || plan || ':' || status FROM saas_accounts ORDER BY email";
    assert_eq!(
        w.texts(accounts).await,
        [
            "ann@example.com:pro:trial",
            "bo@example.com:free:trial",
            "cy@example.com:team:trial"
        ]
    );

    // The two trials that ran out expire through the action; only the paying plan gets a mail.
    let r = w.completed("ExpireTrials", json!({})).await;
    assert_logged(&r, "2 trials expired");
    assert_eq!(
        w.texts(accounts).await,
        [
            "ann@example.com:pro:expired",
            "bo@example.com:free:expired",
            "cy@example.com:team:trial"
        ]
    );
    let mails = w
        .texts("SELECT recipient || ' ' || subject FROM outbox ORDER BY created_at")
        .await;
    assert_eq!(mails, ["[\"ann@example.com\"] Your pro trial has ended"]);
    let expired = w
        .texts("SELECT payload FROM events WHERE name = 'AccountExpired'")
        .await;
    assert_eq!(expired.len(), 2, "{expired:?}");
    // Nothing left to expire: the job skips.
    let again = w.run("ExpireTrials", json!({})).await;
    assert_eq!(
        again.result.status,
        Status::Skipped,
        "{:?}",
        again.result.error
    );

    // Invoices: three pages, five invoices; the next sync updates the same five.
    let r = w.completed("SyncInvoices", json!({})).await;
    assert_eq!(
        r.result
            .calls
            .iter()
            .filter(|c| c.call == "http.call")
            .count(),
        3
    );
    w.completed("SyncInvoices", json!({})).await;
    let invoices = w
        .texts("SELECT number FROM saas_invoices ORDER BY number")
        .await;
    assert_eq!(invoices, ["INV-1", "INV-2", "INV-3", "INV-4", "INV-5"]);
    let second = &billing.requests()[3];
    assert!(
        second.target.contains("since="),
        "the second sync sends its last time: {}",
        second.target
    );

    // The digest of the last week: paid ones only, INV-4 is a month old.
    let r = w.completed("RevenueDigest", json!({})).await;
    let output: Value = serde_json::from_str(r.result.output.as_deref().unwrap()).unwrap();
    assert_eq!(output["totals"]["invoices"], json!(3), "{output}");
    assert!(
        (output["totals"]["revenue"].as_f64().unwrap() - 347.5).abs() < 1e-9,
        "{output}"
    );
    assert_eq!(
        output["by_plan"],
        json!([
            { "plan": "team", "invoices": 2, "revenue": 298.0 },
            { "plan": "pro", "invoices": 1, "revenue": 49.5 },
        ])
    );
    let digest = w
        .texts("SELECT subject || ' / ' || body FROM outbox WHERE subject LIKE 'Revenue%'")
        .await;
    assert_eq!(digest.len(), 1, "{digest:?}");
    assert!(
        digest[0].ends_with(
            ": 347.50 / 3 paid invoices, 347.50 in revenue, 115.83 on average.\n\n\
             Plan | Invoices | Revenue\nteam | 2 | 298.00\npro | 1 | 49.50"
        ),
        "{digest:?}"
    );
    // A week with nothing paid sends nothing.
    let r = w
        .completed("RevenueDigest", json!({ "since": "2099-01-01" }))
        .await;
    assert_logged(&r, "0 paid invoices, 0 plans");
    let digest = w
        .texts("SELECT subject FROM outbox WHERE subject LIKE 'Revenue%'")
        .await;
    assert_eq!(digest.len(), 1, "{digest:?}");
}

/// A payload the build could not judge is checked when it is emitted: the step fails, saying
/// which field, and nothing is stored (a job triggered on it would only have failed later).
async fn an_event_payload_that_does_not_fit_its_declaration_fails_the_emit(db: Database) {
    let w = World::of_source(db).await;
    let r = w.run("EmitLate", json!({})).await;
    assert_eq!(r.result.status, Status::Failed, "{:?}", r.result);
    let error = r.result.error.unwrap_or_default();
    assert!(
        error.contains("event `Late`: field `days`: expected an integer"),
        "{error}"
    );
    assert!(w
        .texts("SELECT payload FROM events WHERE name = 'Late'")
        .await
        .is_empty());
}
