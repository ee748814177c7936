//! The platform's capabilities through the sandbox, with jobs that try to overstep them: a
//! component whose code queries a column its manifest does not declare, a call that tries to
//! leave an integration's base URL, a capability the manifest does not list. And the ordinary
//! ones: state that survives executions, mail held in the outbox with its attachment, events.
//! Each scenario runs on SQLite and on PostgreSQL.

#[macro_use]
mod common;
use common::peers::HttpPeer;
use common::{run_postgres, run_sqlite};

use codeai_host::executor::{Executor, Recorded};
use codeai_host::runtime::{Runtime, RuntimeConfig, Status};
use codeai_host::services::{Services, ServicesConfig};
use codeai_host::store::{entities, migrate, Database};
use codeai_ir::Manifest;
use std::collections::BTreeMap;
use std::sync::Arc;

on_both_databases!(
    a_column_the_manifest_does_not_declare_is_denied,
    http_cannot_leave_the_integration_base_url,
    a_capability_the_manifest_does_not_list_is_denied,
    state_survives_executions_and_mail_is_held_with_its_report,
);

const SOURCE: &str = r#"
entity Session {
    table: "sessions"
    id: uuid primary
    user_id: string
    expires_at: datetime
}

integration Api {
    base_url: env("API_URL")
    auth: bearer(env("API_KEY"))
    timeout: 5s

    item: GET "/v1/items/{sku}" { sku: string }
}

template summary {
    title: "Sessions"
    subject: "Sessions {{n}}"
    body: "{{n}} sessions"
    table: rows { user_id: "User" }
}

event Counted { n: int }

job Expire {
    schedule: every 1h
    steps {
        gone {
            action: delete Session where expires_at < now()
            as: deleted
        }
    }
}

job Fetch {
    schedule: every 1h
    input: { sku: "A-1" }
    steps {
        get {
            call: Api.item { sku: input.sku }
            as: item
        }
    }
}

job Counter {
    schedule: every 1h
    steps {
        read {
            compute: { n: state("runs", 0) + 1 }
            as: next
        }
        save {
            state: { runs: next.n }
        }
        rows {
            query: select Session
            as: rows
        }
        render {
            template: "summary"
            data: { n: next.n, rows: rows }
            format: pdf
            as: file
        }
        mail {
            send: email(["ops@example.com"]) {
                subject: "Sessions"
                template: "summary"
                attachment: file
                data: { n: next.n }
            }
        }
        announce {
            emit: Counted { n: next.n }
        }
    }
}
"#;

/// The jobs of [`SOURCE`], by name, as (program, manifest).
fn checked() -> BTreeMap<String, (codeai_ir::Program, Manifest)> {
    let (file, errors) = codeai_dsl::parse(SOURCE);
    assert!(errors.is_empty(), "{errors:?}");
    let (jobs, diagnostics) = codeai_dsl::check::check(&file, SOURCE, "caps.codeai");
    assert!(!diagnostics.iter().any(|d| d.is_error()), "{diagnostics:?}");
    jobs.into_iter()
        .map(|j| (j.manifest.name.clone(), (j.program, j.manifest)))
        .collect()
}

/// The component of job `name`, with its manifest changed by `tamper` first.
fn component(name: &str, tamper: impl FnOnce(&mut Manifest)) -> Vec<u8> {
    let (program, mut manifest) = checked().remove(name).unwrap();
    tamper(&mut manifest);
    codeai_dsl::emit::emit(&program, &manifest).unwrap()
}

struct Env {
    db: Database,
    executor: Executor,
    dir: std::path::PathBuf,
}

async fn setup(db: Database, vars: BTreeMap<String, String>) -> Env {
    migrate::migrate_up(&db).await.unwrap();
    let (_, manifest) = checked().remove("Expire").unwrap();
    entities::create_entity_tables(&db, "default", &manifest.entities)
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(common::unique("codeai_caps"));
    let env: codeai_host::services::Env = Arc::new(move |k| vars.get(k).cloned());
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: dir.join("cache"),
        pool_size: 4,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let mut config = ServicesConfig::local(dir.join("reports"), env);
    // The integration is a fake peer on loopback.
    config.egress.operator = "127.0.0.1/32".parse().unwrap();
    let platform = Services::new(db.clone(), config);
    Env {
        db,
        executor: Executor::new(runtime, platform),
        dir,
    }
}

impl Env {
    async fn run(&self, bytes: &[u8], input: &str) -> Recorded {
        let job = self.executor.runtime().prepare(bytes).unwrap();
        let name = job.manifest().name.clone();
        self.executor
            .run(&job, common::fixtures::one_attempt(&name, "test", input))
            .await
            .unwrap()
    }
}

async fn a_column_the_manifest_does_not_declare_is_denied(db: Database) {
    let env = setup(db, BTreeMap::new()).await;
    // The honest job runs.
    let honest = env.run(&component("Expire", |_| {}), "{}").await;
    assert_eq!(
        honest.result.status,
        Status::Completed,
        "{:?}",
        honest.result.error
    );
    // The same code with `expires_at` removed from its declaration: the host refuses the column.
    let bytes = component("Expire", |m| {
        m.entities[0].fields.retain(|f| f.name != "expires_at")
    });
    let r = env.run(&bytes, "{}").await;
    assert_eq!(r.result.status, Status::Failed);
    let error = r.result.error.unwrap_or_default();
    assert!(error.contains("expires_at"), "{error}");
    let call = &r.result.calls[0];
    assert_eq!(call.call, "data.delete");
    assert!(
        call.error
            .as_deref()
            .unwrap_or_default()
            .starts_with("denied:"),
        "{call:?}"
    );
    // An entity it does not declare at all is denied too.
    let bytes = component("Expire", |m| m.entities[0].name = "Other".into());
    let r = env.run(&bytes, "{}").await;
    assert_eq!(r.result.status, Status::Failed);
    assert!(r.result.error.unwrap_or_default().contains("Session"));
    let _ = std::fs::remove_dir_all(&env.dir);
}

async fn http_cannot_leave_the_integration_base_url(db: Database) {
    let api = HttpPeer::start(|r| (200, format!("{{\"path\":{:?}}}", r.target))).await;
    let vars = BTreeMap::from([
        ("API_URL".to_string(), format!("{}/api", api.url)),
        ("API_KEY".to_string(), "k".to_string()),
    ]);
    let env = setup(db, vars).await;
    let bytes = component("Fetch", |_| {});
    let ok = env.run(&bytes, r#"{"sku":"A-1"}"#).await;
    assert_eq!(ok.result.status, Status::Completed, "{:?}", ok.result.error);
    assert_eq!(api.requests()[0].target, "/api/v1/items/A-1");
    assert_eq!(api.requests()[0].header("authorization"), Some("Bearer k"));
    for sku in ["../../admin", "..", "a/../../b", "x/y"] {
        let input = serde_json::json!({ "sku": sku }).to_string();
        let r = env.run(&bytes, &input).await;
        assert_eq!(r.result.status, Status::Failed, "{sku}");
        let call = &r.result.calls[0];
        assert!(
            call.error
                .as_deref()
                .unwrap_or_default()
                .starts_with("denied:"),
            "{sku}: {call:?}"
        );
    }
    assert_eq!(
        api.requests().len(),
        1,
        "no other request reached the server"
    );
    // An integration the manifest does not declare (its code still calls `Api`).
    let bytes = component("Fetch", |m| m.integrations[0].name = "Other".into());
    let r = env.run(&bytes, "{}").await;
    assert_eq!(r.result.status, Status::Failed);
    assert_eq!(api.requests().len(), 1);
    let _ = std::fs::remove_dir_all(&env.dir);
}

async fn a_capability_the_manifest_does_not_list_is_denied(db: Database) {
    let env = setup(db, BTreeMap::new()).await;
    let bytes = component("Expire", |m| m.capabilities.retain(|c| c != "data"));
    let r = env.run(&bytes, "{}").await;
    assert_eq!(r.result.status, Status::Failed);
    assert_eq!(r.result.denied, ["data.delete"]);
    assert!(
        r.result.calls.iter().all(|c| c.call != "data.delete"),
        "the call never reached the database"
    );
    let _ = std::fs::remove_dir_all(&env.dir);
}

async fn state_survives_executions_and_mail_is_held_with_its_report(db: Database) {
    let env = setup(db, BTreeMap::new()).await;
    let bytes = component("Counter", |_| {});
    for expected in 1..=3 {
        let r = env.run(&bytes, "{}").await;
        assert_eq!(r.result.status, Status::Completed, "{:?}", r.result.error);
        let output: serde_json::Value =
            serde_json::from_str(r.result.output.as_deref().unwrap()).unwrap();
        assert_eq!(output["next"]["n"], expected, "{output}");
    }
    // Three mails held (no SMTP configured), each naming its PDF.
    let db = &env.db;
    let mails = |column: &str| {
        let sql = format!("SELECT {column} FROM outbox WHERE kind = 'email' ORDER BY created_at");
        async move { common::column::<String>(db, &sql, &[]).await }
    };
    let (subjects, attachments) = (mails("subject").await, mails("attachments").await);
    assert_eq!(subjects, ["Sessions 1", "Sessions 2", "Sessions 3"]);
    for a in &attachments {
        let a: serde_json::Value = serde_json::from_str(a).unwrap();
        assert!(a[0]["name"].as_str().unwrap().ends_with(".pdf"), "{a}");
    }
    let events = common::count(
        &env.db,
        "SELECT COUNT(*) FROM events WHERE name = 'Counted'",
        &[],
    )
    .await;
    assert_eq!(events, 3);
    let _ = std::fs::remove_dir_all(&env.dir);
}
