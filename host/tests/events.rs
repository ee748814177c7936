//! `GET /events` against a whole in-process host: the events real executions emitted (an
//! `emit:` step and `on_complete`), each tenant's kept apart, the `type`, `job` and `since`
//! filters, cursor pages, refused queries, and the path in the OpenAPI document.

#[macro_use]
mod common;

use chrono::{SecondsFormat, Utc};
use codeai_host::store::{tenants, Database};
use common::test_host::{each, token_of, TestHost, ADMIN};
use common::{run_postgres, run_sqlite, wait_until};
use serde_json::{json, Value};

const SOURCE: &str = r#"
event Pinged { n: int }
event Finished { job: string, execution: string }

job Pinger {
    description: "Emits one event per step and one when it completes"
    steps {
        ping {
            emit: Pinged { n: 1 }
        }
    }
    on_complete: emit(Finished)
}
"#;

fn component() -> Vec<u8> {
    let (artifacts, _) = codeai_dsl::compile("events.codeai", SOURCE).unwrap();
    artifacts.into_iter().next().unwrap().bytes
}

/// The events `token` lists with `query` (one page of up to 500).
async fn events(host: &TestHost, token: &str, query: &str) -> Vec<Value> {
    let (status, page) = host.get(token, &format!("/events?limit=500{query}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page["next_cursor"].is_null(), "{page}");
    page["data"].as_array().unwrap().clone()
}

/// Runs Pinger for `token` and waits until both of its events are listed (`on_complete` is
/// written just after the execution's final state); the execution's id.
async fn ping(host: &TestHost, token: &str) -> String {
    let before = events(host, token, "").await.len();
    let done = host.run_completed(token, "Pinger", json!({})).await;
    wait_until("the run's two events are listed", || async {
        events(host, token, "").await.len() == before + 2
    })
    .await;
    done["id"].as_str().unwrap().to_string()
}

/// Follows the cursors of `query` with pages of `limit`; the ids in order.
async fn all_pages(host: &TestHost, token: &str, query: &str, limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let after = cursor
            .as_ref()
            .map(|c| format!("&cursor={c}"))
            .unwrap_or_default();
        let (status, page) = host
            .get(token, &format!("/events?limit={limit}{query}{after}"))
            .await;
        assert_eq!(status, 200, "{page}");
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= limit, "{page}");
        ids.extend(each(&page["data"], "id").into_iter().map(String::from));
        match page["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(data.len(), limit, "a page before the last is full: {page}");
                cursor = Some(c.to_string());
            }
            None => return ids,
        }
    }
}

async fn events_are_listed_per_tenant_filtered_and_paged(db: Database) {
    let host = TestHost::start(db.clone(), |_| {}).await;
    for tenant in ["acme", "globex"] {
        tenants::create_tenant(&db, tenant, None, None, None)
            .await
            .unwrap();
    }
    let acme = token_of(&db, "acme").await;
    let globex = token_of(&db, "globex").await;
    host.upload_ok(&acme, component()).await;
    host.upload_ok(&globex, component()).await;

    let first = ping(&host, &acme).await;
    // Every event of the second run is emitted at or after this instant, none of the first's.
    let between = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    let second = ping(&host, &acme).await;
    ping(&host, &globex).await;

    // Each tenant sees its own events only, newest first; the admin sees every tenant's.
    let listed = events(&host, &acme, "").await;
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert!(listed.iter().all(|e| e["tenant"] == "acme"), "{listed:?}");
    assert!(listed.iter().all(|e| e["job"] == "Pinger"), "{listed:?}");
    let listed_json = Value::Array(listed.clone());
    let times: Vec<&str> = each(&listed_json, "created_at");
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");
    let finished: Vec<&Value> = listed.iter().filter(|e| e["type"] == "Finished").collect();
    assert_eq!(finished.len(), 2, "{listed:?}");
    assert_eq!(finished[0]["execution_id"], second.as_str());
    assert_eq!(finished[1]["execution_id"], first.as_str());
    assert_eq!(finished[0]["data"]["job"], "Pinger");
    assert_eq!(finished[0]["data"]["execution"], second.as_str());
    let pinged: Vec<&Value> = listed.iter().filter(|e| e["type"] == "Pinged").collect();
    assert_eq!(pinged.len(), 2, "{listed:?}");
    assert_eq!(pinged[0]["data"], json!({ "n": 1 }));

    let theirs = events(&host, &globex, "").await;
    assert_eq!(theirs.len(), 2, "{theirs:?}");
    assert!(theirs.iter().all(|e| e["tenant"] == "globex"), "{theirs:?}");
    let all = events(&host, ADMIN, "").await;
    assert_eq!(all.len(), 6, "{all:?}");
    let all_json = Value::Array(all.clone());
    let mut tenants_seen: Vec<&str> = each(&all_json, "tenant");
    tenants_seen.sort();
    tenants_seen.dedup();
    assert_eq!(tenants_seen, ["acme", "globex"]);

    // Filters: by type, by job, by time, together; empty values are no filter.
    let only_pinged = events(&host, &acme, "&type=Pinged").await;
    assert_eq!(only_pinged.len(), 2, "{only_pinged:?}");
    assert!(only_pinged.iter().all(|e| e["type"] == "Pinged"));
    assert_eq!(events(&host, &acme, "&job=Pinger").await.len(), 4);
    assert!(events(&host, &acme, "&job=Other").await.is_empty());
    assert!(events(&host, &acme, "&type=Nope").await.is_empty());
    assert_eq!(events(&host, &acme, "&type=&job=").await.len(), 4);
    let since = format!("&since={}", between.replace('+', "%2B"));
    let recent = events(&host, &acme, &since).await;
    assert_eq!(recent.len(), 2, "{recent:?}");
    assert!(recent.iter().all(|e| e["execution_id"] == second.as_str()));
    let recent_finished = events(&host, &acme, &format!("{since}&type=Finished")).await;
    assert_eq!(recent_finished.len(), 1, "{recent_finished:?}");
    assert_eq!(
        events(&host, ADMIN, &format!("{since}&type=Pinged"))
            .await
            .len(),
        2,
        "acme's second run and globex's run"
    );

    // Cursor pages hold the same events in the same order, with and without a filter.
    let ids: Vec<String> = each(&listed_json, "id")
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(all_pages(&host, &acme, "", 1).await, ids);
    assert_eq!(all_pages(&host, &acme, "", 3).await, ids);
    let pinged_ids: Vec<String> = each(&Value::Array(only_pinged), "id")
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(all_pages(&host, &acme, "&type=Pinged", 1).await, pinged_ids);
    assert_eq!(all_pages(&host, ADMIN, "", 4).await.len(), 6);

    // Refused queries.
    let (status, body) = host.get(&acme, "/events?since=yesterday").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("invalid_query"))
    );
    let (status, body) = host.get(&acme, "/events?cursor=zz").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("invalid_cursor"))
    );
    let (status, body) = host.get(&acme, "/events?limit=0").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("invalid_query"))
    );
    let (status, _) = host.get("not-a-token", "/events").await;
    assert_eq!(status, 401);

    host.stop().await;
}

on_both_databases!(events_are_listed_per_tenant_filtered_and_paged);

#[tokio::test]
async fn the_openapi_document_describes_events() {
    let doc = codeai_host::api::openapi();
    let doc = serde_json::to_value(&doc).unwrap();
    let get = &doc["paths"]["/events"]["get"];
    assert!(get.is_object(), "{}", doc["paths"]);
    let params: Vec<&str> = each(&get["parameters"], "name");
    for name in ["type", "job", "since", "limit", "cursor"] {
        assert!(params.contains(&name), "{params:?}");
    }
    let schema = &doc["components"]["schemas"]["EventInfo"]["properties"];
    for field in [
        "id",
        "tenant",
        "type",
        "job",
        "execution_id",
        "data",
        "created_at",
    ] {
        assert!(schema.get(field).is_some(), "{schema}");
    }
}
