//! Tenant data lives in a namespace of its own; platform data is reached only through the
//! platform's operations (`SECURITY.md`, "Data").
//!
//! The attacks: an entity over each platform table and with quoting and metacharacters (at build
//! and, with the manifest edited after the build, at upload); a forged admin token; writes to
//! the built-in entities; report rows whose path points at a host file or climbs out with `..`;
//! reading or deleting another tenant's executions; another tenant's tables of the same name,
//! also through upserts on the same key and aggregates over them; maintenance of the whole
//! database.

use crate::common::{run_postgres, run_sqlite};
use crate::support::{build, job, tenant, with_manifest, TestHost, ADMIN};
use codeai_host::store::query::EntityQueries;
use codeai_host::store::{entities, Database};
use codeai_host::wasm::data::Query;
use codeai_ir::platform::{builtin_entity, PLATFORM_TABLES};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

/// A harmless job with one entity of its own, to edit.
const SHOP: &str = r#"
entity Product {
    table: "products"
    id: uuid primary
    sku: string
    quantity: int
}

job Restock {
    steps {
        add {
            action: insert Product { sku: "SKU-1", quantity: 5 }
        }
        read {
            query: select Product
            as: rows
        }
    }
}
"#;

/// The calls of an execution: `(call, detail, error)`.
fn calls(exec: &Value) -> Vec<(String, String, Option<String>)> {
    exec["calls"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|c| {
            (
                c["call"].as_str().unwrap_or_default().to_string(),
                c["detail"].as_str().unwrap_or_default().to_string(),
                c["error"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// The first call named `name` of an execution.
fn call(exec: &Value, name: &str) -> (String, String, Option<String>) {
    let found = calls(exec).into_iter().find(|(c, ..)| c == name);
    found.unwrap_or_else(|| panic!("no {name} call: {exec}"))
}

fn source_with_table(table: &str) -> String {
    SHOP.replace(r#"table: "products""#, &format!("table: {}", json!(table)))
}

/// Table names an attacker tries: every platform table, and quoting, schema and path tricks.
fn hostile_tables() -> Vec<String> {
    let mut names: Vec<String> = PLATFORM_TABLES
        .iter()
        .filter(|t| builtin_entity(t).is_none())
        .map(|t| t.to_string())
        .collect();
    for trick in [
        "TOKENS",
        "Tokens",
        "tokens\" --",
        "x\"; DELETE FROM tokens; --",
        "main.tokens",
        "public.tokens",
        "\"tokens\"",
        "tokens ",
        "tenant_globex__products",
        "x__products",
        "sqlite_master",
        "pg_authid",
        "codeai_anything",
        "../tokens",
        "_codeai_migrations",
        "",
    ] {
        names.push(trick.to_string());
    }
    names
}

async fn no_entity_reaches_a_platform_table(db: Database) {
    let t = TestHost::start(db, |_| {}).await;
    let acme = tenant(&t.db, "acme").await;
    let valid = job(SHOP, "Restock");
    for table in hostile_tables() {
        // `codeai build` refuses the declaration, pointing at it.
        let errors = build(&source_with_table(&table))
            .map(|_| ())
            .expect_err(&format!("`{table}` was accepted by the compiler"));
        assert!(errors.contains("tenant.codeai:"), "{errors}");
        // A manifest edited after the build is refused at upload, before anything is kept.
        let edited = with_manifest(&valid, |m| m["entities"][0]["table"] = json!(table));
        let (status, body) = t.upload(&acme, edited).await;
        assert_eq!(status, 422, "`{table}`: {body}");
        assert_eq!(
            body["error"]["code"], "entity_not_allowed",
            "`{table}`: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("entity `Product` cannot be used"),
            "{message}"
        );
    }
    let (_, jobs) = t.get(&acme, "/jobs").await;
    assert_eq!(jobs["data"], json!([]), "nothing was registered");
    t.stop().await;
}

async fn a_forged_admin_token_stays_forged(db: Database) {
    let t = TestHost::start(db, |_| {}).await;
    let acme = tenant(&t.db, "acme").await;
    // The attack of the issue: insert a row into `tokens` with `is_admin` and a known hash.
    let forged = "cai_forged_admin_token_of_the_tenant";
    let hash = hex::encode(Sha256::digest(forged.as_bytes()));
    let source = format!(
        r#"
entity Token {{
    table: "tokens"
    id: string primary
    name: string
    token_hash: string
    is_admin: bool
    created_at: datetime
}}
job Escalate {{
    steps {{
        forge {{
            action: insert Token {{ id: "t1", name: "mine", token_hash: "{hash}", is_admin: true, created_at: now() }}
        }}
    }}
}}
"#
    );
    let errors = build(&source).map(|_| ()).unwrap_err();
    assert!(
        errors.contains("`tokens` is a table of the platform itself"),
        "{errors}"
    );
    // Built against an innocent table, then pointed at `tokens`: refused at upload.
    let innocent = source.replace(r#"table: "tokens""#, r#"table: "my_tokens""#);
    let bytes = job(&innocent, "Escalate");
    let edited = with_manifest(&bytes, |m| m["entities"][0]["table"] = json!("tokens"));
    let (status, body) = t.upload(&acme, edited).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("entity_not_allowed"))
    );
    // Run as it was built, the job writes its own `my_tokens`, nothing of the platform's.
    t.upload_ok(&acme, bytes).await;
    t.run_completed(&acme, "Escalate", json!({})).await;
    let (status, _) = t.get(forged, "/jobs").await;
    assert_eq!(status, 401, "the forged token opens nothing");
    let (status, _) = t.get(ADMIN, "/jobs").await;
    assert_eq!(status, 200);
    t.stop().await;
}

/// A host with two tenants, `acme` and `globex`, and their tokens.
async fn acme_and_globex(db: Database) -> (TestHost, String, String) {
    let t = TestHost::start(db, |_| {}).await;
    let acme = tenant(&t.db, "acme").await;
    let globex = tenant(&t.db, "globex").await;
    (t, acme, globex)
}

async fn tenants_tables_are_their_own(db: Database) {
    let (t, acme, globex) = acme_and_globex(db).await;
    let bytes = job(SHOP, "Restock");
    t.upload_ok(&acme, bytes.clone()).await;
    t.upload_ok(&globex, bytes).await;
    // The operator has an application table of the same name.
    let decls = codeai_host::wasm::read_manifest(&job(SHOP, "Restock"))
        .unwrap()
        .entities;
    entities::create_entity_tables(&t.db, "default", &decls)
        .await
        .unwrap();
    for _ in 0..2 {
        t.run_completed(&acme, "Restock", json!({})).await;
    }
    let exec = t.run_completed(&globex, "Restock", json!({})).await;
    // Each tenant's job saw its own rows only.
    let read = call(&exec, "data.select");
    assert!(read.1.starts_with("Product: "), "{read:?}");
    let count = |tenant: &'static str| {
        let db = t.db.clone();
        let decls = decls.clone();
        async move {
            EntityQueries::new(db, &decls, tenant)
                .unwrap()
                .count("Product", None)
                .await
                .unwrap()
        }
    };
    assert_eq!(count("acme").await, 2);
    assert_eq!(count("globex").await, 1);
    assert_eq!(
        count("default").await,
        0,
        "the operator's table is untouched"
    );
    // And the rows are in separate tables, not only filtered apart.
    let tables = table_names(&t.db).await;
    assert!(tables.contains(&"products".to_string()), "{tables:?}");
    match &t.db {
        Database::Sqlite(_) => {
            assert!(
                tables.contains(&"tenant_acme__products".to_string()),
                "{tables:?}"
            );
            assert!(
                tables.contains(&"tenant_globex__products".to_string()),
                "{tables:?}"
            );
        }
        Database::Postgres(pool) => {
            let schemas: Vec<String> = sqlx::query_scalar(
                "SELECT table_schema::TEXT FROM information_schema.tables \
                 WHERE table_name = 'products' AND table_schema LIKE current_schema() || '%'",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            assert_eq!(schemas.len(), 3, "{schemas:?}");
            assert!(
                schemas.iter().any(|s| s.ends_with("_tenant_acme")),
                "{schemas:?}"
            );
            assert!(
                schemas.iter().any(|s| s.ends_with("_tenant_globex")),
                "{schemas:?}"
            );
        }
    }
    t.stop().await;
}

/// Stock by `sku`, a unique field: an upsert that matches on it, then totals over the table.
const STOCK: &str = r#"
entity Product {
    table: "products"
    id: uuid primary
    sku: string unique
    quantity: int
}

job Stock {
    input: { quantity: int = 1 }
    steps {
        put {
            action: upsert Product { sku: "SKU-1", quantity: input.quantity } on [sku]
        }
        totals {
            query: aggregate Product { rows: count(), units: sum(quantity) }
            as: totals
        }
    }
}
"#;

/// A second tenant uploads the same job: its upsert on the same key cannot overwrite the first
/// tenant's row (nor the operator's), and its aggregate counts its own rows only.
async fn upserts_and_aggregates_stay_in_the_tenants_tables(db: Database) {
    let (t, acme, globex) = acme_and_globex(db).await;
    let bytes = job(STOCK, "Stock");
    // The operator's own table of the same name, with a row of the same key.
    let decls = codeai_host::wasm::read_manifest(&bytes).unwrap().entities;
    entities::create_entity_tables(&t.db, "default", &decls)
        .await
        .unwrap();
    let operator = EntityQueries::new(t.db.clone(), &decls, "default").unwrap();
    operator
        .insert("Product", r#"[{"sku": "SKU-1", "quantity": 5}]"#)
        .await
        .unwrap();
    t.upload_ok(&acme, bytes.clone()).await;
    t.upload_ok(&globex, bytes).await;

    let totals = |exec: &Value| exec["output"]["totals"].clone();
    let first = t
        .run_completed(&acme, "Stock", json!({ "quantity": 7 }))
        .await;
    assert_eq!(totals(&first), json!({ "rows": 1, "units": 7 }), "{first}");
    // Globex writes the same key with its own quantity, and sees its own row only.
    let theirs = t
        .run_completed(&globex, "Stock", json!({ "quantity": 1000 }))
        .await;
    assert_eq!(
        totals(&theirs),
        json!({ "rows": 1, "units": 1000 }),
        "{theirs}"
    );
    // Acme's row was not overwritten: its next upsert updates its own row, once.
    let again = t
        .run_completed(&acme, "Stock", json!({ "quantity": 8 }))
        .await;
    assert_eq!(totals(&again), json!({ "rows": 1, "units": 8 }), "{again}");
    let quantities = |tenant: &'static str| {
        let db = t.db.clone();
        let decls = decls.clone();
        async move {
            let rows = EntityQueries::new(db, &decls, tenant)
                .unwrap()
                .select_rows(&Query {
                    entity: "Product".into(),
                    filter: None,
                    order: vec![],
                    limit: None,
                })
                .await
                .unwrap();
            rows.iter()
                .map(|r| (r["sku"].clone(), r["quantity"].clone()))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(quantities("acme").await, vec![(json!("SKU-1"), json!(8))]);
    assert_eq!(
        quantities("globex").await,
        vec![(json!("SKU-1"), json!(1000))]
    );
    assert_eq!(
        quantities("default").await,
        vec![(json!("SKU-1"), json!(5))],
        "the operator's row is untouched"
    );
    t.stop().await;
}

/// The tables of the platform's schema (SQLite: the file; PostgreSQL: `current_schema()`).
async fn table_names(db: &Database) -> Vec<String> {
    match db {
        Database::Sqlite(pool) => sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') \
             AND name NOT LIKE 'sqlite_%'",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
        Database::Postgres(pool) => sqlx::query_scalar(
            "SELECT table_name::TEXT FROM information_schema.tables \
             WHERE table_schema = current_schema()",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
    }
}

async fn the_reserved_names_are_the_platform_tables(db: Database) {
    codeai_host::store::migrate::migrate_up(&db).await.unwrap();
    let mut tables = table_names(&db).await;
    tables.sort();
    let mut reserved: Vec<String> = PLATFORM_TABLES.iter().map(|t| t.to_string()).collect();
    reserved.sort();
    assert_eq!(
        tables, reserved,
        "codeai_ir::platform::PLATFORM_TABLES must list exactly the migrated tables"
    );
}

/// A job of `tenant` that reads its executions and deletes its finished ones.
const JANITOR: &str = r#"
job Janitor {
    steps {
        mine {
            query: select JobExecution where status != "nothing"
            as: rows
        }
        purge {
            action: delete JobExecution where job_id != "nothing"
            as: purged
        }
    }
}
"#;

async fn executions_are_read_and_deleted_only_within_the_tenant(db: Database) {
    let (t, acme, globex) = acme_and_globex(db).await;
    t.upload_ok(&acme, job(JANITOR, "Janitor")).await;
    t.upload_ok(&globex, job(SHOP, "Restock")).await;
    let theirs = t.run_completed(&globex, "Restock", json!({})).await;
    // The janitor's own earlier run, finished; and one of its runs still pending.
    let first = t.run_completed(&acme, "Janitor", json!({})).await;
    let second = t.run_completed(&acme, "Janitor", json!({})).await;
    let rows = call(&second, "data.delete");
    // The first run only: not this running one, not globex's.
    assert_eq!(rows.1, "JobExecution: 1 row", "{rows:?}");
    let shown = |token: &str, exec: &Value| {
        let path = format!("/executions/{}", exec["id"].as_str().unwrap());
        let token = token.to_string();
        let t = &t;
        async move { t.get(&token, &path).await.0 }
    };
    assert_eq!(
        shown(&globex, &theirs).await,
        200,
        "another tenant's execution is still there"
    );
    assert_eq!(
        shown(&acme, &first).await,
        404,
        "the tenant's own finished execution was deleted"
    );
    assert_eq!(
        shown(&acme, &second).await,
        200,
        "the running execution was not deleted under its own feet"
    );
    t.stop().await;
}

async fn builtin_entities_cannot_be_written(db: Database) {
    // The edited component below is hand-made now: an operator who allows them.
    let t = TestHost::start(db, |c| {
        c.api.tenant_components = codeai_host::api::TenantComponents::Any
    })
    .await;
    let acme = tenant(&t.db, "acme").await;
    // A report row of its own choosing: with a `path`, the compiler and the upload refuse.
    let with_path = r#"
entity Report { table: "reports" id: uuid primary job: string format: string size: int path: string created_at: datetime }
job Plant { steps { s { action: insert Report { job: "x", format: "pdf", size: 1, path: "/etc/passwd", created_at: now() } } } }
"#;
    let errors = build(with_path).map(|_| ()).unwrap_err();
    assert!(errors.contains("has no field `path`"), "{errors}");
    // Without the path, built against a table of its own and pointed at `reports` afterwards:
    // the upload passes (the shape is the built-in's) and the insert is denied at run time.
    let own = r#"
entity Fake { table: "fakes" id: uuid primary job: string format: string size: int created_at: datetime }
job Plant { steps { s { action: insert Fake { job: "x", format: "pdf", size: 1, created_at: now() } } } }
"#;
    let bytes = with_manifest(&job(own, "Plant"), |m| {
        m["entities"][0]["table"] = json!("reports")
    });
    t.upload_ok(&acme, bytes).await;
    let exec = t.run(&acme, "Plant", json!({})).await;
    assert_eq!(exec["status"], "failed", "{exec}");
    let error = call(&exec, "data.insert").2.unwrap_or_default();
    assert!(
        error.starts_with("denied: cannot insert into `Fake`"),
        "{error}"
    );
    let (_, reports) = t.get(&acme, "/reports").await;
    assert_eq!(reports["data"], json!([]));
    t.stop().await;
}

async fn report_files_come_from_the_platform_not_from_rows(db: Database) {
    let t = TestHost::start(db, |_| {}).await;
    let acme = tenant(&t.db, "acme").await;
    // A canary outside the report directory, and report rows that point at it and at a host
    // file (rows written before this version kept a path; any row is data).
    let canary = t.dir.join("canary.txt");
    std::fs::create_dir_all(&t.dir).unwrap();
    std::fs::write(&canary, "still here").unwrap();
    let reports = t.dir.join("reports");
    let climbing = format!("{}/acme/../../canary.txt", reports.display());
    let mut ids = Vec::new();
    for path in ["/etc/passwd", climbing.as_str(), "/proc/self/environ"] {
        let id = uuid::Uuid::new_v4();
        plant_report(&t.db, id, path).await;
        ids.push(id);
    }
    for id in &ids {
        let (status, link) = t.get(&acme, &format!("/reports/{id}/download")).await;
        assert_eq!(status, 200, "{link}");
        let res = t
            .http
            .get(link["download_url"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body = res.text().await.unwrap();
        assert_eq!(status, 404, "a row's path was served: {body}");
        assert!(!body.contains("root:"), "{body}");
    }
    // The tenant's cleanup job deletes those rows; the canary stays.
    let cleanup = r#"
job Cleanup {
    steps {
        find { query: select Report as: all }
        drop { for_each: all item: r action: delete_report(r.id) }
        purge { action: delete Report where size >= 0 }
    }
}
"#;
    t.upload_ok(&acme, job(cleanup, "Cleanup")).await;
    t.run_completed(&acme, "Cleanup", json!({})).await;
    assert_eq!(std::fs::read_to_string(&canary).unwrap(), "still here");
    assert!(std::path::Path::new("/etc/passwd").exists());
    let (_, left) = t.get(&acme, "/reports").await;
    assert_eq!(left["data"], json!([]));
    t.stop().await;
}

/// A `reports` row of tenant `acme` with `path` set, as no job can write it.
async fn plant_report(db: &Database, id: uuid::Uuid, path: &str) {
    let sql = "INSERT INTO reports (id, tenant_id, job, format, size, name, path, created_at) \
               VALUES ($1, 'acme', 'Plant', 'pdf', 10, 'x.pdf', $2, $3)";
    let now = chrono::Utc::now();
    match db {
        Database::Sqlite(pool) => sqlx::query(sql)
            .bind(id.to_string())
            .bind(path)
            .bind(now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
            .execute(pool)
            .await
            .map(drop),
        Database::Postgres(pool) => sqlx::query(sql)
            .bind(id)
            .bind(path)
            .bind(now)
            .execute(pool)
            .await
            .map(drop),
    }
    .unwrap();
}

async fn a_tenants_maintenance_stays_in_its_tables(db: Database) {
    let t = TestHost::start(db, |_| {}).await;
    let acme = tenant(&t.db, "acme").await;
    let source = format!(
        "{SHOP}\njob Tidy {{ steps {{ n {{ query: count Product }} a {{ action: maintain analyze }} \
         v {{ action: maintain vacuum }} }} }}"
    );
    let built = build(&source).unwrap();
    for (_, bytes) in built {
        t.upload_ok(&acme, bytes).await;
    }
    let exec = t.run(&acme, "Tidy", json!({})).await;
    let maintained: Vec<_> = calls(&exec)
        .into_iter()
        .filter(|(c, ..)| c == "data.maintain")
        .collect();
    let analyze = &maintained[0];
    assert_eq!(
        analyze.1, "ANALYZE of products",
        "only the tenant's own table"
    );
    let vacuum = &maintained[1];
    match &t.db {
        Database::Sqlite(_) => {
            assert!(
                vacuum
                    .2
                    .as_deref()
                    .is_some_and(|e| e.starts_with("denied:")),
                "{vacuum:?}"
            );
            assert_eq!(exec["status"], "failed");
        }
        Database::Postgres(_) => {
            assert_eq!(vacuum.1, "VACUUM (ANALYZE) of products", "{vacuum:?}");
            assert_eq!(exec["status"], "completed");
        }
    }
    // Run again at once: the tenant's allowance is used.
    let again = t.run(&acme, "Tidy", json!({})).await;
    assert_eq!(again["status"], "failed");
    let error = call(&again, "data.maintain").2.unwrap_or_default();
    assert!(error.contains("once per 60 minutes"), "{error}");
    t.stop().await;
}

on_both_databases!(
    no_entity_reaches_a_platform_table,
    a_forged_admin_token_stays_forged,
    tenants_tables_are_their_own,
    upserts_and_aggregates_stay_in_the_tenants_tables,
    the_reserved_names_are_the_platform_tables,
    executions_are_read_and_deleted_only_within_the_tenant,
    builtin_entities_cannot_be_written,
    report_files_come_from_the_platform_not_from_rows,
    a_tenants_maintenance_stays_in_its_tables,
);
