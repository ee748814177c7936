//! Secrets: `env("NAME")` in a tenant's job reads that tenant's secrets and nothing else; the
//! operator's jobs read the host's environment but not the platform's own variables; no value
//! shows in an error, a log line or a recorded call; values are encrypted at rest and bound to
//! their tenant and name; the API never shows a value nor another tenant's secret.
//!
//! The test host gets a fake process environment (`ServicesConfig::env`) holding known values
//! for the platform's variables, and a loopback listener stands for the tenant's own server: it
//! records every request, so "nothing arrived" is a count, not a wait.

use crate::common::peers::{HttpPeer, Received};
use crate::common::test_host::each;
#[allow(unused_imports)]
use crate::common::{run_postgres, run_sqlite};
use crate::support::{job, tenant, TestHost, ADMIN};
use codeai_host::services::Env;
use codeai_host::store::Database;
use serde_json::{json, Value};
use std::sync::Arc;

/// The host's environment as the test host sees it: the platform's variables (the first
/// [`PLATFORM`]), one the operator denies with `CODEAI_ENV_DENY=AWS_*`, and ordinary ones.
const HOST_ENV: &[(&str, &str)] = &[
    ("CODEAI_ADMIN_TOKEN", "host-admin-token-0001"),
    ("CODEAI_SECRET_KEY", "host-secret-key-0002"),
    (
        "DATABASE_URL",
        "postgres://app:host-db-password-0003@db/prod",
    ),
    ("REDIS_URL", "redis://:host-redis-password-0004@cache"),
    ("SMTP_PASSWORD", "host-smtp-password-0005"),
    ("SLACK_WEBHOOK", "https://hooks.example/host-webhook-0006"),
    ("AWS_SECRET_ACCESS_KEY", "host-aws-secret-0007"),
    ("WAREHOUSE_API_KEY", "host-warehouse-key-0008"),
    ("HOME", "/root/host-home-dir-0009"),
];

/// How many of [`HOST_ENV`], from the start, are the platform's variables: no job may read them.
const PLATFORM: usize = 6;

fn host_env() -> Env {
    Arc::new(|name| {
        HOST_ENV
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    })
}

async fn start(db: Database) -> TestHost {
    TestHost::start(db, |c| {
        c.services.env = host_env();
        c.services.env_deny = vec!["AWS_*".into()];
        // The listeners are on loopback: the operator allows it (egress is not what is tested).
        c.services.egress.tenants = "127.0.0.1/32".parse().unwrap();
        c.services.egress.operator = "127.0.0.1/32".parse().unwrap();
    })
    .await
}

/// A server that answers 200 with what it was sent in its auth headers.
async fn echo_server() -> HttpPeer {
    HttpPeer::start(|r: &Received| {
        let body = json!({
            "authorization": r.header("authorization"),
            "leak": r.header("x-leak"),
        });
        (200, body.to_string())
    })
    .await
}

/// For each variable, a job `L<i>` that sends it to `url` (a literal base URL) twice: as
/// `bearer(env(var))` (a step whose failure does not stop the job) and as
/// `header("X-Leak", env(var))`; then it logs what the server echoed.
fn leak_source(url: &str, vars: &[&str]) -> String {
    let mut src = String::new();
    for (i, var) in vars.iter().enumerate() {
        src.push_str(&format!(
            r#"
integration Bearer{i} {{
    base_url: "{url}"
    auth: bearer(env("{var}"))
    timeout: 5s
    send: GET "/leak" {{}}
}}

integration Header{i} {{
    base_url: "{url}"
    auth: header("X-Leak", env("{var}"))
    timeout: 5s
    send: GET "/leak" {{}}
}}

job L{i} {{
    steps {{
        bearer {{ call: Bearer{i}.send {{}} as: a on_fail: continue }}
        header {{ call: Header{i}.send {{}} as: b }}
        say {{ log: "server said {{{{a.authorization}}}} and {{{{b.leak}}}}" }}
    }}
}}
"#
        ));
    }
    src
}

/// Uploads jobs `L<i>` of `source` with `token`, all at once (each is compiled).
async fn upload_leaks(t: &TestHost, token: &str, source: &str, n: usize) {
    let uploads = (0..n).map(|i| t.upload_ok(token, job(source, &format!("L{i}"))));
    futures_util::future::join_all(uploads).await;
}

/// Runs job `L<i>`; its execution.
async fn run_leak(t: &TestHost, token: &str, i: usize) -> Value {
    t.run(token, &format!("L{i}"), json!({})).await
}

/// The errors of an execution that ran a leak job: its own and its first call's.
fn leak_errors(exec: &Value) -> [String; 2] {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    [text(&exec["error"]), text(&exec["calls"][0]["error"])]
}

/// Every value of the host's environment, none of which may show anywhere.
fn host_values() -> Vec<&'static str> {
    HOST_ENV.iter().map(|(_, v)| *v).collect()
}

fn assert_shows_none(what: &Value, values: &[&str]) {
    let text = what.to_string();
    for v in values {
        assert!(!text.contains(v), "`{v}` shows in {what:#}");
    }
}

/// Every header value the server received, in order.
fn sent_values(peer: &HttpPeer) -> Vec<String> {
    peer.requests()
        .iter()
        .flat_map(|r| {
            [r.header("authorization"), r.header("x-leak")]
                .into_iter()
                .flatten()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn put_secret(t: &TestHost, token: &str, name: &str, value: &str) -> (u16, Value) {
    t.put(
        token,
        &format!("/secrets/{name}"),
        json!({ "value": value }),
    )
    .await
}

async fn a_tenants_job_reads_its_own_secrets_and_nothing_of_the_host(db: Database) {
    let t = start(db.clone()).await;
    let acme = tenant(&db, "acme").await;
    let beta = tenant(&db, "beta").await;
    let peer = echo_server().await;
    assert_eq!(
        put_secret(&t, &acme, "OWN", "acme-own-secret-0010").await.0,
        201
    );
    assert_eq!(
        put_secret(&t, &beta, "BETA_TOKEN", "beta-secret-0011")
            .await
            .0,
        201
    );

    // The platform's variables, an ordinary and a denied variable of the host, a name nobody
    // set, and another tenant's secret: none reaches the server.
    let mut refused: Vec<&str> = HOST_ENV[..PLATFORM].iter().map(|(name, _)| *name).collect();
    refused.extend([
        "WAREHOUSE_API_KEY",
        "AWS_SECRET_ACCESS_KEY",
        "NEVER_SET",
        "BETA_TOKEN",
    ]);
    let mut vars = refused.clone();
    vars.push("OWN");
    let source = leak_source(&peer.url, &vars);
    upload_leaks(&t, &acme, &source, vars.len()).await;
    for (i, var) in refused.iter().enumerate() {
        let exec = run_leak(&t, &acme, i).await;
        assert_eq!(exec["status"], "failed", "{var}: {exec:#}");
        for error in leak_errors(&exec) {
            assert!(
                error.contains(&format!("`{var}` is not a secret of tenant `acme`"))
                    && error.contains(&format!("codeai secret set --tenant acme {var}"))
                    && error.contains(&format!("PUT /secrets/{var}")),
                "{var}: {error}"
            );
        }
        assert_shows_none(&exec, &host_values());
        assert_shows_none(&exec, &["beta-secret-0011"]);
    }
    assert_eq!(peer.requests().len(), 0, "{:?}", peer.requests());

    // The tenant's own secret is sent, and only to the server; its echo is redacted in the log.
    let exec = run_leak(&t, &acme, vars.len() - 1).await;
    assert_eq!(exec["status"], "completed", "{exec:#}");
    assert_shows_none(&exec, &["acme-own-secret-0010"]);
    assert_eq!(
        exec["log"][0]["message"],
        "server said Bearer [secret] and [secret]"
    );
    assert_eq!(
        sent_values(&peer),
        ["Bearer acme-own-secret-0010", "acme-own-secret-0010"]
    );
    t.stop().await;
}

async fn the_operators_jobs_read_the_host_environment_but_not_the_platforms_variables(
    db: Database,
) {
    let t = start(db.clone()).await;
    let peer = echo_server().await;
    // A secret of the operator comes first, even under a platform variable's name.
    assert_eq!(
        put_secret(&t, ADMIN, "SMTP_PASSWORD", "operator-secret-0012")
            .await
            .0,
        201
    );
    let vars = [
        "DATABASE_URL",
        "CODEAI_ADMIN_TOKEN",
        "REDIS_URL",
        "SLACK_WEBHOOK",
        "AWS_SECRET_ACCESS_KEY",
        "NEVER_SET",
        "WAREHOUSE_API_KEY",
        "SMTP_PASSWORD",
    ];
    let source = leak_source(&peer.url, &vars);
    upload_leaks(&t, ADMIN, &source, vars.len()).await;
    for (i, var) in vars[..6].iter().enumerate() {
        let exec = run_leak(&t, ADMIN, i).await;
        assert_eq!(exec["status"], "failed", "{var}: {exec:#}");
        let why = if *var == "NEVER_SET" {
            "is neither a secret of the operator nor set in the host's environment"
        } else {
            "is a variable of the platform itself"
        };
        for error in leak_errors(&exec) {
            assert!(
                error.contains(&format!("`{var}` {why}"))
                    && error.contains(&format!("codeai secret set {var}")),
                "{var}: {error}"
            );
        }
        assert_shows_none(&exec, &host_values());
    }
    assert_eq!(peer.requests().len(), 0, "{:?}", peer.requests());

    for i in [6, 7] {
        let exec = run_leak(&t, ADMIN, i).await;
        assert_eq!(exec["status"], "completed", "{exec:#}");
        assert_shows_none(&exec, &["host-warehouse-key-0008", "operator-secret-0012"]);
    }
    assert_eq!(
        sent_values(&peer),
        [
            "Bearer host-warehouse-key-0008",
            "host-warehouse-key-0008",
            "Bearer operator-secret-0012",
            "operator-secret-0012"
        ]
    );
    t.stop().await;
}

const FAILING: &str = r#"
integration Home {
    base_url: env("HOME")
    send: GET "/x" {}
}

integration Hidden {
    base_url: env("API_URL")
    timeout: 5s
    send: GET "/leak" {}
}

integration Echo {
    base_url: env("ECHO_URL")
    auth: bearer(env("TOKEN"))
    timeout: 5s
    send: GET "/leak" {}
}

job BadBase {
    steps { ask { call: Home.send {} } }
}

job Unreachable {
    steps { ask { call: Hidden.send {} } }
}

job EchoedError {
    steps { ask { call: Echo.send {} } }
}
"#;

async fn errors_and_logs_never_show_a_secret_value(db: Database) {
    let t = start(db.clone()).await;
    let acme = tenant(&db, "acme").await;

    // A base URL that is not a URL: the error names the variable, not its value.
    t.upload_ok(ADMIN, job(FAILING, "BadBase")).await;
    let exec = t.run(ADMIN, "BadBase", json!({})).await;
    let error = exec["error"].as_str().unwrap();
    assert!(
        error.contains("the value of `HOME` is not a URL"),
        "{error}"
    );
    assert!(
        !error.contains("[secret]"),
        "no redaction was needed: {error}"
    );
    assert_shows_none(&exec, &host_values());
    t.upload_ok(&acme, job(FAILING, "BadBase")).await;
    put_secret(&t, &acme, "HOME", "/home/acme-private-0013").await;
    let exec = t.run(&acme, "BadBase", json!({})).await;
    let error = exec["error"].as_str().unwrap();
    assert!(
        error.contains("the value of `HOME` is not a URL"),
        "{error}"
    );
    assert_shows_none(&exec, &["acme-private-0013", "[secret]"]);

    // A server that cannot be reached at a secret URL: the error names the operation and path.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{closed}/hidden-prefix-0014");
    put_secret(&t, &acme, "API_URL", &url).await;
    t.upload_ok(&acme, job(FAILING, "Unreachable")).await;
    let exec = t.run(&acme, "Unreachable", json!({})).await;
    let error = exec["error"].as_str().unwrap();
    assert!(error.contains("`Hidden.send` (GET /leak)"), "{error}");
    assert_shows_none(
        &exec,
        &["hidden-prefix-0014", &closed.to_string(), "[secret]"],
    );

    // A server that echoes the token in an error answer: redacted in the error the guest got
    // and in the recorded execution.
    let peer = HttpPeer::start(|r: &Received| {
        (
            500,
            format!("bad token {}", r.header("authorization").unwrap_or("")),
        )
    })
    .await;
    put_secret(&t, &acme, "ECHO_URL", &peer.url).await;
    put_secret(&t, &acme, "TOKEN", "acme-token-0015").await;
    t.upload_ok(&acme, job(FAILING, "EchoedError")).await;
    let exec = t.run(&acme, "EchoedError", json!({})).await;
    let error = exec["error"].as_str().unwrap();
    assert!(
        error.contains("`Echo.send` (GET /leak) answered 500")
            && error.contains("bad token Bearer [secret]"),
        "{error}"
    );
    assert_shows_none(&exec, &["acme-token-0015", &peer.url]);
    assert_eq!(peer.requests().len(), 1);
    t.stop().await;
}

/// Every row of `secrets` as text, column by column.
async fn raw_rows(db: &Database) -> Vec<String> {
    let sql = "SELECT tenant_id || '|' || name || '|' || key_id || '|' || nonce || '|' || \
               ciphertext FROM secrets";
    match db {
        Database::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
        Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
    }
}

async fn raw(db: &Database, sql: &str) {
    match db {
        Database::Sqlite(pool) => sqlx::raw_sql(sql).execute(pool).await.map(drop),
        Database::Postgres(pool) => sqlx::raw_sql(sql).execute(pool).await.map(drop),
    }
    .unwrap();
}

async fn secrets_are_encrypted_and_bound_to_their_tenant_and_name(db: Database) {
    use base64::Engine as _;
    let t = start(db.clone()).await;
    let acme = tenant(&db, "acme").await;
    let beta = tenant(&db, "beta").await;
    let value = "acme-at-rest-0016";
    put_secret(&t, &acme, "OWN", value).await;
    let rows = raw_rows(&db).await;
    assert_eq!(rows.len(), 1);
    let b64 = base64::engine::general_purpose::STANDARD.encode(value);
    for row in &rows {
        assert!(row.starts_with("acme|OWN|"), "{row}");
        assert!(!row.contains(value) && !row.contains(&b64[..16]), "{row}");
        assert!(!row.contains(&hex::encode(value)[..16]), "{row}");
    }

    // The row copied to another tenant, and to another name of its own tenant.
    for (tenant, name) in [("beta", "OWN"), ("acme", "COPY")] {
        let sql = format!(
            "INSERT INTO secrets (tenant_id, name, key_id, nonce, ciphertext, created_at, \
             updated_at) SELECT '{tenant}', '{name}', key_id, nonce, ciphertext, created_at, \
             updated_at FROM secrets WHERE tenant_id = 'acme' AND name = 'OWN'"
        );
        raw(&db, &sql).await;
    }
    let peer = echo_server().await;
    let source = leak_source(&peer.url, &["OWN", "COPY"]);
    upload_leaks(&t, &beta, &source, 1).await;
    t.upload_ok(&acme, job(&source, "L1")).await;
    for (token, i, name, who) in [(&beta, 0, "OWN", "beta"), (&acme, 1, "COPY", "acme")] {
        let exec = run_leak(&t, token, i).await;
        assert_eq!(exec["status"], "failed", "{exec:#}");
        for error in leak_errors(&exec) {
            assert!(
                error.contains(&format!(
                    "secret `{name}` of tenant `{who}` does not decrypt"
                )),
                "{error}"
            );
        }
        assert_shows_none(&exec, &[value]);
    }
    assert_eq!(peer.requests().len(), 0, "{:?}", peer.requests());
    t.stop().await;
}

async fn the_secrets_api_shows_no_value_and_only_the_callers_tenant(db: Database) {
    let t = start(db.clone()).await;
    let acme = tenant(&db, "acme").await;
    let beta = tenant(&db, "beta").await;
    let (status, body) = put_secret(&t, &acme, "API_TOKEN", "acme-listed-0017").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], "API_TOKEN");
    assert!(
        body["updated_at"].is_string() && body.get("value").is_none(),
        "{body}"
    );
    let (status, body) = put_secret(&t, &acme, "API_TOKEN", "acme-listed-0018").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        put_secret(&t, &beta, "BETA_ONLY", "beta-listed-0019")
            .await
            .0,
        201
    );

    let (status, list) = t.get(&acme, "/secrets").await;
    assert_eq!(status, 200);
    assert_eq!(list["next_cursor"], Value::Null);
    let names: Vec<&str> = each(&list["data"], "name");
    assert_eq!(names, ["API_TOKEN"]);
    assert_shows_none(&list, &["acme-listed", "beta-listed"]);

    // Another tenant's secrets: not listed, not deletable, not writable, as if absent.
    assert_eq!(t.get(&acme, "/secrets?tenant=beta").await.0, 404);
    let (status, _) = t.delete(&acme, "/secrets/BETA_ONLY").await;
    assert_eq!(status, 404);
    let overwrite = json!({"value": "overwritten"});
    let (status, _) = t
        .put(&acme, "/secrets/BETA_ONLY?tenant=beta", overwrite)
        .await;
    assert_eq!(status, 404);
    let (_, list) = t.get(&beta, "/secrets").await;
    assert_eq!(list["data"][0]["name"], "BETA_ONLY");
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    // The admin acts on `?tenant=` (default: the operator's own).
    let (_, list) = t.get(ADMIN, "/secrets?tenant=beta").await;
    assert_eq!(list["data"][0]["name"], "BETA_ONLY");
    let (_, list) = t.get(ADMIN, "/secrets").await;
    assert_eq!(list["data"], json!([]));
    assert_eq!(t.get(ADMIN, "/secrets?tenant=nobody").await.0, 404);

    // Names, values and the count are bounded, each with a clear error.
    for bad in ["1ABC", "A-B", "A.B", &"X".repeat(129)] {
        let (status, body) = put_secret(&t, &acme, bad, "v").await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "invalid_secret_name");
    }
    let (status, body) = put_secret(&t, &acme, "BIG", &"x".repeat(64 * 1024 + 1)).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_secret_value");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("65536 bytes"),
        "{body}"
    );
    assert_eq!(put_secret(&t, &acme, "EMPTY", "").await.0, 422);
    assert_eq!(
        put_secret(&t, &acme, "MAX", &"x".repeat(64 * 1024)).await.0,
        201
    );
    // Fill acme up to 1,000 (rows written directly: only the count matters here).
    raw(
        &db,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 998) \
         INSERT INTO secrets (tenant_id, name, key_id, nonce, ciphertext, created_at, updated_at) \
         SELECT 'acme', 'FILL_' || i, 'k', 'n', 'c', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM n",
    )
    .await;
    let (status, body) = put_secret(&t, &acme, "ONE_MORE", "v1234").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "too_many_secrets");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("delete one first"));
    assert_eq!(
        put_secret(&t, &acme, "API_TOKEN", "replaced-0020").await.0,
        200
    );
    assert_eq!(put_secret(&t, &beta, "ONE_MORE", "v1234").await.0, 201);

    let (status, _) = t.delete(&acme, "/secrets/API_TOKEN").await;
    assert_eq!(status, 204);
    let (status, body) = t.delete(&acme, "/secrets/API_TOKEN").await;
    assert_eq!(status, 404, "{body}");
    t.stop().await;
}

on_both_databases!(
    a_tenants_job_reads_its_own_secrets_and_nothing_of_the_host,
    the_operators_jobs_read_the_host_environment_but_not_the_platforms_variables,
    errors_and_logs_never_show_a_secret_value,
    secrets_are_encrypted_and_bound_to_their_tenant_and_name,
    the_secrets_api_shows_no_value_and_only_the_callers_tenant,
);
