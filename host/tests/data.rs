//! The `data` capability against real databases: every scenario runs on SQLite (a temp file)
//! and on PostgreSQL (`DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`, in a
//! schema of its own that is dropped afterwards).
//!
//! Under `CI=true` an unreachable PostgreSQL fails the PostgreSQL tests; elsewhere they print a
//! notice and pass.

use chrono::{DateTime, TimeZone, Utc};
use codeai_host::store::entities::create_entity_tables;
use codeai_host::store::query::{EntityQueries, QueryError, Read, MAX_FILTER_DEPTH, MAX_ROW_LIMIT};
use codeai_host::store::{demo, Database};
use codeai_host::wasm::data::{
    AggFunc, AggregateColumn, AggregateQuery, Assignment, CompareOp, Comparison, Filter,
    FilterNode, MaintenanceOp, NewValue, OrderBy, Query,
};
use codeai_ir::{EntityDecl, FieldDecl, FieldType};
use serde_json::{json, Map, Value};

#[macro_use]
mod common;
use common::{run_postgres, run_sqlite};

on_both_databases!(
    cleanup_deletes_exactly_the_expired_sessions,
    demo_data_matches_its_summary,
    filter_with_and_or_not_in_like_is_null_order_and_limit,
    comparisons_on_every_type,
    rows_round_trip_with_declared_types,
    update_adds_to_a_counter_and_sets_values,
    tenants_never_see_each_other,
    refusals_unknown_entity,
    refusals_unknown_columns,
    refusals_wrong_value_types,
    refusals_bad_filters,
    limit_is_clamped,
    maintenance_runs,
    a_table_made_after_the_pool_read_the_schema_is_maintained_through_any_connection,
    a_tenants_maintenance_is_its_own_tables_once_an_hour,
    upserts_write_new_keys_update_known_ones_and_stay_in_their_tenant,
    a_unique_field_added_later_gets_its_index_and_every_connection_sees_it,
    aggregates_count_sum_average_and_bound_their_groups,
    fields_declared_later_become_columns_of_the_table,
);

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 12, 7, 0, 0).unwrap()
}

const TZ: chrono_tz::Tz = chrono_tz::Europe::Berlin;

fn field(name: &str, ty: FieldType, optional: bool) -> FieldDecl {
    FieldDecl {
        name: name.into(),
        ty,
        primary: name == "id",
        optional,
        unique: false,
    }
}

/// Prices by `sku`, a unique field an upsert matches on.
fn price_entity() -> EntityDecl {
    let mut sku = field("sku", FieldType::String, false);
    sku.unique = true;
    EntityDecl {
        name: "Price".into(),
        table: "prices".into(),
        fields: vec![
            field("id", FieldType::Uuid, false),
            sku,
            field("amount", FieldType::Float, false),
            field("note", FieldType::String, true),
        ],
    }
}

/// A test entity with a field of every type.
fn item_entity() -> EntityDecl {
    EntityDecl {
        name: "Item".into(),
        table: "items".into(),
        fields: vec![
            field("id", FieldType::Uuid, false),
            field("name", FieldType::String, false),
            field("kind", FieldType::String, false),
            field("score", FieldType::Int, false),
            field("weight", FieldType::Float, true),
            field("active", FieldType::Bool, false),
            field("due", FieldType::Date, true),
            field("seen_at", FieldType::Datetime, true),
            field("meta", FieldType::Json, true),
        ],
    }
}

fn entities() -> Vec<EntityDecl> {
    let mut all = demo::example_entities();
    all.push(item_entity());
    all.push(price_entity());
    all
}

async fn capability(db: &Database, tenant: &str) -> EntityQueries {
    let entities = entities();
    codeai_host::store::migrate::migrate_up(db)
        .await
        .expect("migrate");
    create_entity_tables(db, tenant, &entities)
        .await
        .expect("create tables");
    EntityQueries::new(db.clone(), &entities, tenant).expect("capability")
}

async fn seed_items(data: &EntityQueries) {
    let rows = json!([
        {"name": "apple", "kind": "fruit", "score": 5, "weight": 0.2, "active": true, "due": "2026-01-10",
         "seen_at": "2026-01-12T09:00:00+01:00", "meta": {"c": "red"}},
        {"name": "banana", "kind": "fruit", "score": 3, "active": true},
        {"name": "cherry", "kind": "fruit", "score": 9, "weight": 0.01, "active": false, "due": "2026-02-01",
         "seen_at": "2026-01-11T10:00:00+02:00"},
        {"name": "carrot", "kind": "veg", "score": 7, "weight": 0.1, "active": true, "meta": [1, 2]},
        {"name": "celery", "kind": "veg", "score": 2, "weight": 0.5, "active": false, "due": "2026-01-05"},
        {"name": "Cabbage", "kind": "veg", "score": 8, "weight": 1.5, "active": true},
        {"name": "date", "kind": "fruit", "score": 6, "weight": null, "active": true},
        {"name": "egg", "kind": "other", "score": 4.0, "weight": 0.06, "active": true},
    ]);
    assert_eq!(data.insert("Item", &rows.to_string()).await.unwrap(), 8);
}

fn cmp(field: &str, op: CompareOp, value: Value) -> FilterNode {
    FilterNode::Compare(Comparison::new(field, op, value))
}

fn one(field: &str, op: CompareOp, value: Value) -> Filter {
    Filter::compare(Comparison::new(field, op, value))
}

fn query(
    entity: &str,
    filter: Option<Filter>,
    order: &[(&str, bool)],
    limit: Option<u32>,
) -> Query {
    Query {
        entity: entity.into(),
        filter,
        order: order
            .iter()
            .map(|(f, d)| OrderBy {
                field: (*f).into(),
                descending: *d,
            })
            .collect(),
        limit,
    }
}

/// The rows of `entity` that `filter` picks, in no particular order.
async fn rows_where(
    data: &EntityQueries,
    entity: &str,
    filter: Option<Filter>,
) -> Vec<Map<String, Value>> {
    sorted_rows(data, entity, filter, &[]).await
}

/// The rows of `entity` that `filter` picks, in `order`.
async fn sorted_rows(
    data: &EntityQueries,
    entity: &str,
    filter: Option<Filter>,
    order: &[(&str, bool)],
) -> Vec<Map<String, Value>> {
    data.select_rows(&query(entity, filter, order, None))
        .await
        .unwrap()
}

async fn names(data: &EntityQueries, filter: Filter, order: &[(&str, bool)]) -> Vec<String> {
    data.select_rows(&query("Item", Some(filter), order, None))
        .await
        .unwrap()
        .into_iter()
        .map(|row| row["name"].as_str().unwrap().to_owned())
        .collect()
}

fn denied(result: Result<impl std::fmt::Debug, QueryError>) {
    match result {
        Err(QueryError::Denied(_)) => {}
        other => panic!("expected denied, got {other:?}"),
    }
}

fn invalid(result: Result<impl std::fmt::Debug, QueryError>) {
    match result {
        Err(QueryError::Invalid(_)) => {}
        other => panic!("expected invalid, got {other:?}"),
    }
}

fn rfc3339(t: DateTime<Utc>) -> Value {
    json!(t.to_rfc3339())
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

/// CleanupExpiredSessions: `delete Session where expires_at < now()`.
async fn cleanup_deletes_exactly_the_expired_sessions(db: Database) {
    let data = capability(&db, "tenant-a").await;
    let summary = demo::seed(&data, now(), TZ).await.unwrap();
    assert_eq!(summary.expired_sessions, 5);
    let expired = one("expires_at", CompareOp::Lt, rfc3339(now()));
    assert_eq!(data.count("Session", Some(&expired)).await.unwrap(), 5);
    let deleted = data.delete("Session", Some(&expired)).await.unwrap();
    assert_eq!(deleted, summary.expired_sessions);
    let left = data
        .select_rows(&query("Session", None, &[("expires_at", false)], None))
        .await
        .unwrap();
    assert_eq!(
        left.len() as u64,
        summary.sessions - summary.expired_sessions
    );
    for row in &left {
        let expires = DateTime::parse_from_rfc3339(row["expires_at"].as_str().unwrap()).unwrap();
        assert!(expires > now(), "a live session was kept: {row:?}");
    }
    // Deleting again finds nothing.
    assert_eq!(data.delete("Session", Some(&expired)).await.unwrap(), 0);
}

async fn demo_data_matches_its_summary(db: Database) {
    let data = capability(&db, "tenant-a").await;
    let summary = demo::seed(&data, now(), TZ).await.unwrap();
    assert_eq!(summary.products, 10);
    assert_eq!(summary.low_stock_products, 3);
    assert_eq!(summary.pending_webhooks, 3);
    // Yesterday in Berlin is 2026-01-11, i.e. 2026-01-10T23:00Z .. 2026-01-11T23:00Z.
    let (start, end) = summary.yesterday;
    assert_eq!(start, Utc.with_ymd_and_hms(2026, 1, 10, 23, 0, 0).unwrap());
    assert_eq!(end, Utc.with_ymd_and_hms(2026, 1, 11, 23, 0, 0).unwrap());
    let yesterday = Filter {
        nodes: vec![
            FilterNode::All(vec![1, 2]),
            cmp("created_at", CompareOp::Ge, rfc3339(start)),
            cmp("created_at", CompareOp::Lt, rfc3339(end)),
        ],
        root: 0,
    };
    assert_eq!(
        data.count("Order", Some(&yesterday)).await.unwrap(),
        summary.yesterday_orders
    );
    assert!(summary.orders > summary.yesterday_orders);
    let rows = sorted_rows(&data, "Order", Some(yesterday), &[("created_at", false)]).await;
    let revenue: f64 = rows
        .iter()
        .filter(|r| r["status"] != "cancelled")
        .map(|r| r["total"].as_f64().unwrap())
        .sum();
    assert!((revenue - summary.yesterday_revenue).abs() < 1e-9);
    let pending = one("status", CompareOp::Eq, json!("pending"));
    assert_eq!(data.count("Webhook", Some(&pending)).await.unwrap(), 3);
    // Demo data is the application's rows only: no platform history.
    assert_eq!(data.count("JobExecution", None).await.unwrap(), 0);
    assert_eq!(data.count("Report", None).await.unwrap(), 0);
    // The history tests add is the platform's rows, seen through the same entities.
    let history = demo::history(&db, "tenant-a", now()).await.unwrap();
    let expired_reports = one("expires_at", CompareOp::Lt, rfc3339(now()));
    assert_eq!(
        data.count("Report", Some(&expired_reports)).await.unwrap(),
        history.expired_reports
    );
    assert_eq!(
        data.count("JobExecution", None).await.unwrap(),
        history.job_executions
    );
    assert_eq!(data.count("Report", None).await.unwrap(), history.reports);
}

async fn filter_with_and_or_not_in_like_is_null_order_and_limit(db: Database) {
    let data = capability(&db, "tenant-a").await;
    seed_items(&data).await;
    // (name like "c%" or kind in ["other"]) and not (weight is null) and score >= 3
    // order by score desc limit 3
    let filter = Filter {
        nodes: vec![
            cmp("score", CompareOp::Ge, json!(3)),
            FilterNode::Any(vec![2, 3]),
            cmp("name", CompareOp::Like, json!("c%")),
            cmp("kind", CompareOp::In, json!(["other"])),
            FilterNode::Not(5),
            cmp("weight", CompareOp::IsNull, Value::Null),
            FilterNode::All(vec![1, 4, 0]),
        ],
        root: 6,
    };
    let rows = data
        .select_rows(&query(
            "Item",
            Some(filter.clone()),
            &[("score", true)],
            Some(3),
        ))
        .await
        .unwrap();
    let got: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(got, ["cherry", "Cabbage", "carrot"]);
    // Without the limit, egg (score 4) follows; celery (score 2) never matches.
    assert_eq!(
        names(&data, filter.clone(), &[("score", true)]).await,
        ["cherry", "Cabbage", "carrot", "egg"]
    );
    assert_eq!(data.count("Item", Some(&filter)).await.unwrap(), 4);
    // The JSON text `select` returns is the same rows.
    let text = data
        .select(&query("Item", Some(filter), &[("score", true)], Some(2)))
        .await
        .unwrap();
    let parsed: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed.len(), 2);
    assert_eq!(parsed[0]["name"], "cherry");

    let every = |node| Filter {
        nodes: vec![node],
        root: 0,
    };
    // (filter, the names of the rows that match, by name).
    let matching = [
        (
            one("weight", CompareOp::IsNull, Value::Null),
            &["banana", "date"][..],
        ),
        (
            one("weight", CompareOp::Eq, Value::Null),
            &["banana", "date"][..],
        ),
        // `in` on ints.
        (
            one("score", CompareOp::In, json!([2, 9])),
            &["celery", "cherry"][..],
        ),
    ];
    for (filter, expected) in matching {
        let what = format!("{filter:?}");
        assert_eq!(
            names(&data, filter, &[("name", false)]).await,
            expected,
            "{what}"
        );
    }
    // (filter, how many rows match).
    let counted = [
        (one("weight", CompareOp::IsNotNull, Value::Null), 6),
        // Empty any is false, empty all is true.
        (every(FilterNode::Any(vec![])), 0),
        (every(FilterNode::All(vec![])), 8),
        // An empty `in` matches nothing.
        (one("kind", CompareOp::In, json!([])), 0),
    ];
    for (filter, expected) in counted {
        assert_eq!(
            data.count("Item", Some(&filter)).await.unwrap(),
            expected,
            "{filter:?}"
        );
    }
    // NULLs sort first ascending and last descending, on both databases.
    let asc = names(&data, every(FilterNode::All(vec![])), &[("weight", false)]).await;
    let mut first_two = asc[..2].to_vec();
    first_two.sort();
    assert_eq!(first_two, ["banana", "date"]);
    assert_eq!(asc[2], "cherry");
    let desc = names(&data, every(FilterNode::All(vec![])), &[("weight", true)]).await;
    assert_eq!(desc[0], "Cabbage");
    let mut last_two = desc[6..].to_vec();
    last_two.sort();
    assert_eq!(last_two, ["banana", "date"]);
}

async fn comparisons_on_every_type(db: Database) {
    let data = capability(&db, "tenant-a").await;
    seed_items(&data).await;
    let by_name = &[("name", false)];
    // (field, comparison, value, the names of the rows that match, in order).
    let cases: [(&str, CompareOp, Value, &[&str]); 10] = [
        (
            "kind",
            CompareOp::Ne,
            json!("fruit"),
            &["Cabbage", "carrot", "celery", "egg"][..],
        ),
        (
            "active",
            CompareOp::Eq,
            json!(false),
            &["celery", "cherry"][..],
        ),
        (
            "weight",
            CompareOp::Gt,
            json!(0.4),
            &["Cabbage", "celery"][..],
        ),
        ("score", CompareOp::Le, json!(3), &["banana", "celery"][..]),
        ("due", CompareOp::Lt, json!("2026-01-09"), &["celery"][..]),
        // Datetimes compare as instants whatever offset they were written with.
        (
            "seen_at",
            CompareOp::Lt,
            json!("2026-01-11T09:00:00Z"),
            &["cherry"][..],
        ),
        (
            "seen_at",
            CompareOp::Eq,
            json!("2026-01-12T03:00:00-05:00"),
            &["apple"][..],
        ),
        (
            "seen_at",
            CompareOp::Ge,
            json!("2026-01-11T08:00:00Z"),
            &["apple", "cherry"][..],
        ),
        // `like` is case-insensitive on both databases.
        ("name", CompareOp::Like, json!("%AB%"), &["Cabbage"][..]),
        ("name", CompareOp::Like, json!("c_rrot"), &["carrot"][..]),
    ];
    for (field, op, value, expected) in cases {
        let what = format!("{field} {op:?} {value}");
        assert_eq!(
            names(&data, one(field, op, value), by_name).await,
            expected,
            "{what}"
        );
    }
    // A uuid by equality.
    let apple = rows_where(
        &data,
        "Item",
        Some(one("name", CompareOp::Eq, json!("apple"))),
    )
    .await;
    let id = apple[0]["id"].as_str().unwrap().to_uppercase();
    assert_eq!(
        names(&data, one("id", CompareOp::Eq, json!(id)), by_name).await,
        ["apple"]
    );
    // Json fields can be tested for null.
    assert_eq!(
        names(
            &data,
            one("meta", CompareOp::IsNotNull, Value::Null),
            by_name
        )
        .await,
        ["apple", "carrot"]
    );
}

async fn rows_round_trip_with_declared_types(db: Database) {
    let data = capability(&db, "tenant-a").await;
    let id = "6F9619FF-8B86-D011-B42D-00C04FC964FF";
    let row = json!([{
        "id": id, "name": "widget", "kind": "tool", "score": 42, "weight": 2.5, "active": true,
        "due": "2026-03-01", "seen_at": "2026-01-12T09:30:15.250+01:00",
        "meta": {"tags": ["a", "b"], "depth": 2, "ok": true}
    }]);
    assert_eq!(data.insert("Item", &row.to_string()).await.unwrap(), 1);
    let rows = rows_where(&data, "Item", None).await;
    assert_eq!(
        Value::Object(rows[0].clone()),
        json!({
            "id": "6f9619ff-8b86-d011-b42d-00c04fc964ff", "name": "widget", "kind": "tool",
            "score": 42, "weight": 2.5, "active": true, "due": "2026-03-01",
            "seen_at": "2026-01-12T08:30:15.250000Z",
            "meta": {"tags": ["a", "b"], "depth": 2, "ok": true}
        })
    );
    // Optional fields left out are null; a missing uuid primary key is generated.
    let row = json!([{"name": "bare", "kind": "tool", "score": 1, "active": false}]);
    assert_eq!(data.insert("Item", &row.to_string()).await.unwrap(), 1);
    let rows = rows_where(
        &data,
        "Item",
        Some(one("name", CompareOp::Eq, json!("bare"))),
    )
    .await;
    assert_eq!(rows[0]["weight"], Value::Null);
    assert_eq!(rows[0]["meta"], Value::Null);
    assert_eq!(rows[0]["seen_at"], Value::Null);
    assert!(uuid::Uuid::parse_str(rows[0]["id"].as_str().unwrap()).is_ok());
    // A timestamp given for a date is the day it names where it was written (`today().start`
    // in Chicago is that day, not the UTC one).
    let row = json!([{"name": "dated", "kind": "tool", "score": 1, "active": false,
        "due": "2026-02-01T00:00:00-06:00"}]);
    assert_eq!(data.insert("Item", &row.to_string()).await.unwrap(), 1);
    let filter = one("due", CompareOp::Eq, json!("2026-02-01"));
    let rows = rows_where(&data, "Item", Some(filter)).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["name"], "dated");
    // An empty insert is fine.
    assert_eq!(data.insert("Item", "[]").await.unwrap(), 0);
    // A failed insert inserts nothing (one transaction): the second row repeats a primary key.
    let dup = json!([
        {"id": "00000000-0000-0000-0000-000000000001", "name": "x", "kind": "k", "score": 1, "active": true},
        {"id": "00000000-0000-0000-0000-000000000001", "name": "y", "kind": "k", "score": 1, "active": true},
    ]);
    match data.insert("Item", &dup.to_string()).await {
        Err(QueryError::Invalid(m)) if m.contains("already has a row with this `id`") => {}
        other => panic!("expected a refusal naming the key, got {other:?}"),
    }
    assert_eq!(data.count("Item", None).await.unwrap(), 3);
}

/// RetryFailedWebhooks: `update Webhook set attempts = attempts + 1, … where status = "pending"`.
async fn update_adds_to_a_counter_and_sets_values(db: Database) {
    let data = capability(&db, "tenant-a").await;
    demo::seed(&data, now(), TZ).await.unwrap();
    let pending = one("status", CompareOp::Eq, json!("pending"));
    // The webhooks `filter` picks, by attempts, and their attempts.
    let webhooks = |filter: Filter| {
        let data = &data;
        async move {
            let rows = sorted_rows(data, "Webhook", Some(filter), &[("attempts", false)]).await;
            let attempts: Vec<i64> = rows
                .iter()
                .map(|r| r["attempts"].as_i64().unwrap())
                .collect();
            (rows, attempts)
        }
    };
    assert_eq!(webhooks(pending.clone()).await.1, [0, 1, 2]);
    let set = [
        Assignment {
            field: "attempts".into(),
            value: NewValue::Add(1.0),
        },
        Assignment {
            field: "updated_at".into(),
            value: NewValue::Set(rfc3339(now()).to_string()),
        },
        Assignment {
            field: "last_error".into(),
            value: NewValue::Set("null".into()),
        },
    ];
    assert_eq!(
        data.update("Webhook", Some(&pending), &set).await.unwrap(),
        3
    );
    let (after, attempts) = webhooks(pending.clone()).await;
    assert_eq!(attempts, [1, 2, 3]);
    for row in &after {
        assert_eq!(row["updated_at"], "2026-01-12T07:00:00.000000Z");
        assert_eq!(row["last_error"], Value::Null);
    }
    // The other webhooks were not touched.
    let (_, attempts) = webhooks(one("status", CompareOp::Ne, json!("pending"))).await;
    assert_eq!(attempts, [1, 2, 5]);
    // Adding to a float; setting a string.
    let first = Filter::compare(Comparison::new("sku", CompareOp::Eq, json!("SKU-1001")));
    let set = [
        Assignment {
            field: "price".into(),
            value: NewValue::Add(-0.9),
        },
        Assignment {
            field: "name".into(),
            value: NewValue::Set(json!("Espresso 1kg").to_string()),
        },
    ];
    assert_eq!(data.update("Product", Some(&first), &set).await.unwrap(), 1);
    let rows = rows_where(&data, "Product", Some(first)).await;
    assert!((rows[0]["price"].as_f64().unwrap() - 24.0).abs() < 1e-9);
    assert_eq!(rows[0]["name"], "Espresso 1kg");
    // No filter: every row of the tenant.
    let all = [Assignment {
        field: "attempts".into(),
        value: NewValue::Set("0".into()),
    }];
    assert_eq!(data.update("Webhook", None, &all).await.unwrap(), 6);
}

async fn tenants_never_see_each_other(db: Database) {
    let a = capability(&db, "tenant-a").await;
    let b = capability(&db, "tenant-b").await;
    let summary = demo::seed(&a, now(), TZ).await.unwrap();
    seed_items(&a).await;
    for entity in [
        "Product",
        "Order",
        "Session",
        "Report",
        "JobExecution",
        "Webhook",
        "Item",
    ] {
        assert_eq!(b.count(entity, None).await.unwrap(), 0, "{entity}");
        assert!(b
            .select_rows(&query(entity, None, &[], None))
            .await
            .unwrap()
            .is_empty());
    }
    let everything = Filter {
        nodes: vec![FilterNode::All(vec![])],
        root: 0,
    };
    let set = [Assignment {
        field: "attempts".into(),
        value: NewValue::Add(10.0),
    }];
    assert_eq!(
        b.update("Webhook", Some(&everything), &set).await.unwrap(),
        0
    );
    assert_eq!(b.delete("Session", None).await.unwrap(), 0);
    assert_eq!(b.delete("Item", Some(&everything)).await.unwrap(), 0);
    // B's own rows, with the same ids as A's, live beside A's.
    let a_item = a
        .select_rows(&query(
            "Item",
            Some(one("name", CompareOp::Eq, json!("apple"))),
            &[],
            None,
        ))
        .await
        .unwrap();
    let same_id = json!([{"id": a_item[0]["id"], "name": "b-apple", "kind": "fruit", "score": 1, "active": true}]);
    assert_eq!(b.insert("Item", &same_id.to_string()).await.unwrap(), 1);
    assert_eq!(b.count("Item", None).await.unwrap(), 1);
    let b_rows = b
        .select_rows(&query(
            "Item",
            Some(one("id", CompareOp::Eq, a_item[0]["id"].clone())),
            &[],
            None,
        ))
        .await
        .unwrap();
    assert_eq!(b_rows.len(), 1);
    assert_eq!(b_rows[0]["name"], "b-apple");
    // A is untouched.
    assert_eq!(a.count("Session", None).await.unwrap(), summary.sessions);
    assert_eq!(a.count("Item", None).await.unwrap(), 8);
    let a_hooks = a
        .select_rows(&query("Webhook", None, &[("attempts", true)], Some(1)))
        .await
        .unwrap();
    assert_eq!(a_hooks[0]["attempts"], 5);
    // And B deleting everything it has leaves A's rows.
    assert_eq!(b.delete("Item", None).await.unwrap(), 1);
    assert_eq!(a.count("Item", None).await.unwrap(), 8);
}

async fn refusals_unknown_entity(db: Database) {
    let data = capability(&db, "tenant-a").await;
    denied(data.select(&query("Customer", None, &[], None)).await);
    denied(data.count("Customer", None).await);
    denied(data.delete("Customer", None).await);
    let set = [Assignment {
        field: "x".into(),
        value: NewValue::Add(1.0),
    }];
    denied(data.update("Customer", None, &set).await);
    denied(data.insert("Customer", "[]").await);
    denied(
        data.maintain(MaintenanceOp::Analyze, Some("Customer"))
            .await,
    );
    // The table name is not the entity name.
    denied(data.count("products", None).await);
    // A capability without the entity refuses it even though the table exists.
    let narrow = EntityQueries::new(db.clone(), &[item_entity()], "tenant-a").unwrap();
    denied(narrow.count("Product", None).await);
    assert_eq!(narrow.count("Item", None).await.unwrap(), 0);
}

async fn refusals_unknown_columns(db: Database) {
    let data = capability(&db, "tenant-a").await;
    seed_items(&data).await;
    // In a filter, also nested.
    denied(
        data.count("Item", Some(&one("price", CompareOp::Eq, json!(1))))
            .await,
    );
    let nested = Filter {
        nodes: vec![
            FilterNode::Any(vec![1, 2]),
            cmp("name", CompareOp::Eq, json!("apple")),
            FilterNode::Not(3),
            cmp("password", CompareOp::IsNull, Value::Null),
        ],
        root: 0,
    };
    denied(data.select(&query("Item", Some(nested), &[], None)).await);
    // The tenant column is not a declared field either.
    denied(
        data.count(
            "Item",
            Some(&one("tenant_id", CompareOp::Eq, json!("tenant-b"))),
        )
        .await,
    );
    denied(
        data.delete("Item", Some(&one("tenant_id", CompareOp::Ne, json!("x"))))
            .await,
    );
    // An injection attempt in a field name is just an unknown field.
    denied(
        data.count(
            "Item",
            Some(&one("name\" OR 1=1 --", CompareOp::Eq, json!(1))),
        )
        .await,
    );
    // In the order.
    denied(
        data.select(&query("Item", None, &[("rowid", false)], None))
            .await,
    );
    // In an assignment.
    let set = [Assignment {
        field: "tenant_id".into(),
        value: NewValue::Set("\"tenant-b\"".into()),
    }];
    denied(data.update("Item", None, &set).await);
    let set = [Assignment {
        field: "price".into(),
        value: NewValue::Add(1.0),
    }];
    denied(data.update("Item", None, &set).await);
    // In an insert.
    let row = json!([{"name": "n", "kind": "k", "score": 1, "active": true, "colour": "red"}]);
    denied(data.insert("Item", &row.to_string()).await);
    let row =
        json!([{"name": "n", "kind": "k", "score": 1, "active": true, "tenant_id": "tenant-b"}]);
    denied(data.insert("Item", &row.to_string()).await);
    // Nothing changed.
    assert_eq!(data.count("Item", None).await.unwrap(), 8);
}

async fn refusals_wrong_value_types(db: Database) {
    let data = capability(&db, "tenant-a").await;
    seed_items(&data).await;
    for (field, op, value) in [
        ("score", CompareOp::Eq, json!("five")),
        ("score", CompareOp::Gt, json!(2.5)),
        ("weight", CompareOp::Lt, json!("heavy")),
        ("active", CompareOp::Eq, json!(1)),
        ("name", CompareOp::Eq, json!(5)),
        ("id", CompareOp::Eq, json!("not-a-uuid")),
        ("seen_at", CompareOp::Lt, json!("yesterday")),
        ("seen_at", CompareOp::Lt, json!(1736600000)),
        ("due", CompareOp::Eq, json!("2026-02-30")),
        ("score", CompareOp::Like, json!("1%")),
        ("kind", CompareOp::In, json!("fruit")),
        ("kind", CompareOp::In, json!(["fruit", 3])),
        ("kind", CompareOp::In, json!(["fruit", null])),
        ("meta", CompareOp::Eq, json!({"c": "red"})),
        ("active", CompareOp::Lt, json!(true)),
        ("score", CompareOp::Lt, Value::Null),
    ] {
        let result = data
            .count("Item", Some(&one(field, op, value.clone())))
            .await;
        assert!(
            matches!(result, Err(QueryError::Invalid(_))),
            "{field} {op:?} {value}: {result:?}"
        );
    }
    // Malformed JSON text in a comparison.
    let broken = Filter::compare(Comparison {
        field: "name".into(),
        op: CompareOp::Eq,
        value: "'apple'".into(),
    });
    invalid(data.count("Item", Some(&broken)).await);
    // Assignments.
    for set in [
        Assignment {
            field: "score".into(),
            value: NewValue::Set("\"lots\"".into()),
        },
        Assignment {
            field: "score".into(),
            value: NewValue::Add(0.5),
        },
        Assignment {
            field: "name".into(),
            value: NewValue::Add(1.0),
        },
        Assignment {
            field: "name".into(),
            value: NewValue::Set("null".into()),
        },
        Assignment {
            field: "seen_at".into(),
            value: NewValue::Set("\"noon\"".into()),
        },
        Assignment {
            field: "active".into(),
            value: NewValue::Set("not json".into()),
        },
    ] {
        let result = data.update("Item", None, std::slice::from_ref(&set)).await;
        assert!(
            matches!(result, Err(QueryError::Invalid(_))),
            "{set:?}: {result:?}"
        );
    }
    invalid(data.update("Item", None, &[]).await);
    let twice = [
        Assignment {
            field: "score".into(),
            value: NewValue::Add(1.0),
        },
        Assignment {
            field: "score".into(),
            value: NewValue::Add(1.0),
        },
    ];
    invalid(data.update("Item", None, &twice).await);
    // Inserts.
    for rows in [
        "not json".to_string(),
        json!({"name": "x"}).to_string(),
        json!([1, 2]).to_string(),
        json!([{"name": "x", "kind": "k", "score": "1", "active": true}]).to_string(),
        json!([{"name": "x", "kind": "k", "score": 1, "active": "yes"}]).to_string(),
        json!([{"name": "x", "kind": "k", "score": 1, "active": true, "due": "tomorrow"}])
            .to_string(),
        json!([{"name": "x", "kind": "k", "score": 1}]).to_string(),
        json!([{"name": null, "kind": "k", "score": 1, "active": true}]).to_string(),
    ] {
        let result = data.insert("Item", &rows).await;
        assert!(
            matches!(result, Err(QueryError::Invalid(_))),
            "{rows}: {result:?}"
        );
    }
    // Nothing changed.
    assert_eq!(data.count("Item", None).await.unwrap(), 8);
    let scores: i64 = rows_where(&data, "Item", None)
        .await
        .iter()
        .map(|r| r["score"].as_i64().unwrap())
        .sum();
    assert_eq!(scores, 44);
}

async fn refusals_bad_filters(db: Database) {
    let data = capability(&db, "tenant-a").await;
    seed_items(&data).await;
    let leaf = || cmp("name", CompareOp::Eq, json!("apple"));
    let bad = [
        // Root out of range.
        Filter {
            nodes: vec![leaf()],
            root: 1,
        },
        // No nodes at all.
        Filter {
            nodes: vec![],
            root: 0,
        },
        // A child out of range.
        Filter {
            nodes: vec![FilterNode::All(vec![1, 7]), leaf()],
            root: 0,
        },
        Filter {
            nodes: vec![FilterNode::Not(2), leaf()],
            root: 0,
        },
        // Cycles: self, and through two nodes.
        Filter {
            nodes: vec![FilterNode::Not(0)],
            root: 0,
        },
        Filter {
            nodes: vec![
                FilterNode::Any(vec![1]),
                FilterNode::All(vec![2, 0]),
                leaf(),
            ],
            root: 0,
        },
        // Too deep: a chain of NOTs.
        Filter {
            nodes: (0..=MAX_FILTER_DEPTH as u32)
                .map(|i| {
                    if i as usize == MAX_FILTER_DEPTH {
                        leaf()
                    } else {
                        FilterNode::Not(i + 1)
                    }
                })
                .collect(),
            root: 0,
        },
        // Exponential expansion through shared children: 40 nodes, 2^40 paths.
        Filter {
            nodes: (0..40u32)
                .map(|i| {
                    if i == 39 {
                        leaf()
                    } else {
                        FilterNode::All(vec![i + 1, i + 1])
                    }
                })
                .collect(),
            root: 0,
        },
    ];
    for filter in bad {
        let result = data.count("Item", Some(&filter)).await;
        assert!(
            matches!(result, Err(QueryError::Invalid(_))),
            "{filter:?}: {result:?}"
        );
        invalid(data.delete("Item", Some(&filter)).await);
    }
    // A shared child that is not a cycle is fine.
    let shared = Filter {
        nodes: vec![
            FilterNode::All(vec![1, 2]),
            leaf(),
            FilterNode::Any(vec![1]),
        ],
        root: 0,
    };
    assert_eq!(data.count("Item", Some(&shared)).await.unwrap(), 1);
    // A chain just inside the depth limit is fine.
    let depth = MAX_FILTER_DEPTH as u32 - 1;
    let chain = Filter {
        nodes: (0..=depth)
            .map(|i| {
                if i == depth {
                    leaf()
                } else {
                    FilterNode::All(vec![i + 1])
                }
            })
            .collect(),
        root: 0,
    };
    assert_eq!(data.count("Item", Some(&chain)).await.unwrap(), 1);
    assert_eq!(data.count("Item", None).await.unwrap(), 8);
}

async fn limit_is_clamped(db: Database) {
    let data = capability(&db, "tenant-a").await;
    let total = MAX_ROW_LIMIT as usize + 50;
    for chunk in 0..2 {
        let rows: Vec<Value> = (0..total / 2)
            .map(|i| json!({"user_id": format!("u{chunk}-{i}"), "expires_at": "2026-01-01T00:00:00Z"}))
            .collect();
        assert_eq!(
            data.insert("Session", &Value::Array(rows).to_string())
                .await
                .unwrap(),
            (total / 2) as u64
        );
    }
    assert_eq!(data.count("Session", None).await.unwrap(), total as u64);
    for limit in [None, Some(u32::MAX), Some(MAX_ROW_LIMIT + 1)] {
        let rows = data
            .select_rows(&query("Session", None, &[], limit))
            .await
            .unwrap();
        assert_eq!(rows.len(), MAX_ROW_LIMIT as usize, "{limit:?}");
    }
    let rows = data
        .select_rows(&query("Session", None, &[], Some(7)))
        .await
        .unwrap();
    assert_eq!(rows.len(), 7);
    assert!(data
        .select_rows(&query("Session", None, &[], Some(0)))
        .await
        .unwrap()
        .is_empty());
}

async fn maintenance_runs(db: Database) {
    // The operator's jobs maintain tables and the whole database.
    let data = capability(&db, "default").await;
    demo::seed(&data, now(), TZ).await.unwrap();
    data.delete("Session", None).await.unwrap();
    for op in [
        MaintenanceOp::Vacuum,
        MaintenanceOp::Analyze,
        MaintenanceOp::Reindex,
    ] {
        let summary = data.maintain(op, Some("Session")).await.unwrap();
        assert!(!summary.is_empty());
        let summary = data.maintain(op, None).await.unwrap();
        assert!(summary.contains("whole database"), "{summary}");
    }
    let summary = data
        .maintain(MaintenanceOp::Reindex, Some("Session"))
        .await
        .unwrap();
    assert!(summary.contains("sessions"), "{summary}");
    // The data is intact afterwards.
    assert_eq!(data.count("Product", None).await.unwrap(), 10);
    // The platform's tables are not entities' to maintain.
    let err = data
        .maintain(MaintenanceOp::Vacuum, Some("JobExecution"))
        .await
        .unwrap_err();
    assert!(matches!(err, QueryError::Denied(_)), "{err:?}");
}

/// A table made after every connection of the pool read the schema is reindexed and analyzed
/// through any of them (SQLite looks a REINDEX's table up in the connection's own copy of the
/// schema without checking that it is current).
async fn a_table_made_after_the_pool_read_the_schema_is_maintained_through_any_connection(
    db: Database,
) {
    let data = capability(&db, "default").await;
    // Every connection of the pool reads the schema before `late_prices` exists.
    let warm = (0..8).map(|_| data.count("Product", None));
    for n in futures_util::future::join_all(warm).await {
        n.unwrap();
    }
    let mut late = price_entity();
    late.name = "LatePrice".into();
    late.table = "late_prices".into();
    create_entity_tables(&db, "default", std::slice::from_ref(&late))
        .await
        .unwrap();
    let data = EntityQueries::new(db.clone(), &[late], "default").unwrap();
    for op in [MaintenanceOp::Reindex, MaintenanceOp::Analyze] {
        let runs = (0..8).map(|_| data.maintain(op, Some("LatePrice")));
        for summary in futures_util::future::join_all(runs).await {
            assert!(summary.unwrap().contains("late_prices"));
        }
    }
}

async fn a_tenants_maintenance_is_its_own_tables_once_an_hour(db: Database) {
    let data = capability(&db, "tenant-a").await;
    demo::seed(&data, now(), TZ).await.unwrap();
    // "The whole database" of a tenant is its own tables, each once.
    let summary = data.maintain(MaintenanceOp::Analyze, None).await.unwrap();
    assert!(!summary.contains("whole database"), "{summary}");
    for table in ["products", "orders", "sessions", "webhooks", "items"] {
        assert!(summary.contains(table), "{table} missing from {summary}");
    }
    assert!(
        !summary.contains("job_executions") && !summary.contains("reports"),
        "{summary}"
    );
    // Once per table and operation per hour.
    let err = data
        .maintain(MaintenanceOp::Analyze, Some("Session"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, QueryError::Denied(m) if m.contains("once per 60 minutes")),
        "{err:?}"
    );
    let summary = data
        .maintain(MaintenanceOp::Reindex, Some("Session"))
        .await
        .unwrap();
    assert!(summary.contains("sessions"), "{summary}");
    // Another tenant has its own allowance.
    let b = capability(&db, "tenant-b").await;
    b.maintain(MaintenanceOp::Analyze, Some("Session"))
        .await
        .unwrap();
    // SQLite vacuums whole files: never for a tenant. PostgreSQL vacuums the tenant's tables.
    let vacuum = data.maintain(MaintenanceOp::Vacuum, Some("Product")).await;
    match db {
        Database::Sqlite(_) => assert!(
            matches!(&vacuum, Err(QueryError::Denied(m)) if m.contains("whole database file")),
            "{vacuum:?}"
        ),
        Database::Postgres(_) => assert!(
            vacuum.as_ref().is_ok_and(|s| s.contains("products")),
            "{vacuum:?}"
        ),
    }
}

/// An upsert of prices matching on `keys`.
async fn upsert(data: &EntityQueries, rows: Value, keys: &[&str]) -> Result<u64, QueryError> {
    let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    data.insert_parsed("Price", rows, Some(&keys)).await
}

/// `sku:amount:note` of every price, by sku.
async fn prices(data: &EntityQueries) -> Vec<String> {
    sorted_rows(data, "Price", None, &[("sku", false)])
        .await
        .iter()
        .map(|r| {
            format!(
                "{}:{}:{}",
                r["sku"].as_str().unwrap(),
                r["amount"],
                r["note"]
            )
        })
        .collect()
}

async fn upserts_write_new_keys_update_known_ones_and_stay_in_their_tenant(db: Database) {
    let a = capability(&db, "tenant-a").await;
    let b = capability(&db, "tenant-b").await;
    let sku = ["sku"];
    let first = json!([{ "sku": "A", "amount": 1, "note": "first" }, { "sku": "B", "amount": 2 }]);
    assert_eq!(upsert(&a, first, &sku).await.unwrap(), 2);
    let id_of_a = |rows: Vec<Map<String, Value>>| rows[0]["id"].clone();
    let a_id = id_of_a(rows_where(&a, "Price", Some(one("sku", CompareOp::Eq, json!("A")))).await);
    // Another tenant's row with the same key is its own.
    let theirs = json!([{ "sku": "A", "amount": 100 }]);
    assert_eq!(upsert(&b, theirs, &sku).await.unwrap(), 1);

    // A known key updates what the row gives (the note it leaves alone); a new key inserts;
    // the same key twice in one call: the last wins.
    let second = json!([
        { "sku": "A", "amount": 3 },
        { "sku": "C", "amount": 4 },
        { "sku": "C", "amount": 5, "note": null },
    ]);
    assert_eq!(upsert(&a, second, &sku).await.unwrap(), 2);
    assert_eq!(
        prices(&a).await,
        ["A:3.0:\"first\"", "B:2.0:null", "C:5.0:null"]
    );
    let still = rows_where(&a, "Price", Some(one("sku", CompareOp::Eq, json!("A")))).await;
    assert_eq!(id_of_a(still), a_id, "an upsert keeps the row's id");
    assert_eq!(prices(&b).await, ["A:100.0:null"]);

    // On the primary key, the unique field is an ordinary value.
    let by_id = json!([{ "id": a_id, "sku": "A2", "amount": 9 }]);
    assert_eq!(upsert(&a, by_id, &["id"]).await.unwrap(), 1);
    assert_eq!(a.count("Price", None).await.unwrap(), 3);
    let renamed = rows_where(&a, "Price", Some(one("id", CompareOp::Eq, a_id))).await;
    assert_eq!(
        (&renamed[0]["sku"], &renamed[0]["amount"]),
        (&json!("A2"), &json!(9.0))
    );

    // The unique index holds for a plain insert, said in the entity's words (not the table's).
    let twice = json!([{ "sku": "B", "amount": 7 }]).to_string();
    match a.insert("Price", &twice).await {
        Err(QueryError::Invalid(m)) => assert!(
            m.starts_with("`Price` already has a row with this `id` or `sku` (unique)")
                && !m.contains("prices")
                && !m.contains("tenant"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    // Keys that are not keys, rows without their key, tables jobs only read.
    invalid(upsert(&a, json!([{ "sku": "D", "amount": 1 }]), &["amount"]).await);
    invalid(upsert(&a, json!([{ "sku": "D", "amount": 1 }]), &["sku", "id"]).await);
    invalid(upsert(&a, json!([{ "amount": 1 }]), &sku).await);
    invalid(upsert(&a, json!([{ "sku": null, "amount": 1 }]), &sku).await);
    denied(upsert(&a, json!([{ "sku": "D", "amount": 1 }]), &["secret"]).await);
    let report = json!([{ "id": "x" }]);
    denied(
        a.insert_parsed("Report", report, Some(&["id".to_string()]))
            .await,
    );
    assert_eq!(prices(&b).await, ["A:100.0:null"]);
}

/// A table made before its field was declared `unique` gets the index at the next creation, and
/// the pool's connections that read the schema before it upsert all the same (SQLite checks an
/// upsert's target against the schema a connection holds).
async fn a_unique_field_added_later_gets_its_index_and_every_connection_sees_it(db: Database) {
    codeai_host::store::migrate::migrate_up(&db).await.unwrap();
    let mut plain = price_entity();
    plain.fields[1].unique = false;
    create_entity_tables(&db, "tenant-c", &[plain])
        .await
        .unwrap();
    let data = EntityQueries::new(db.clone(), &[price_entity()], "tenant-c").unwrap();
    // Every connection of the pool reads the schema without the index.
    let warm = (0..8).map(|_| data.count("Price", None));
    for n in futures_util::future::join_all(warm).await {
        assert_eq!(n.unwrap(), 0);
    }
    create_entity_tables(&db, "tenant-c", &[price_entity()])
        .await
        .unwrap();
    let writes = (0..8).map(|i| {
        upsert(
            &data,
            json!([{ "sku": format!("S{i}"), "amount": i }]),
            &["sku"],
        )
    });
    for written in futures_util::future::join_all(writes).await {
        assert_eq!(written.unwrap(), 1);
    }
    let again = json!([{ "sku": "S1", "amount": 10 }]);
    assert_eq!(upsert(&data, again, &["sku"]).await.unwrap(), 1);
    assert_eq!(data.count("Price", None).await.unwrap(), 8);
}

/// An entity that gains fields after its table was made (the operator's namespace and a
/// tenant's): the table gains the columns, old rows read null there, new rows carry them.
async fn fields_declared_later_become_columns_of_the_table(db: Database) {
    codeai_host::store::migrate::migrate_up(&db).await.unwrap();
    for tenant in ["default", "tenant-d"] {
        let mut before = price_entity();
        before.table = "later_prices".into();
        let mut after = before.clone();
        before.fields.retain(|f| f.name != "note");
        after
            .fields
            .push(field("currency", FieldType::String, false));
        create_entity_tables(&db, tenant, std::slice::from_ref(&before))
            .await
            .unwrap();
        let old = EntityQueries::new(db.clone(), &[before], tenant).unwrap();
        let row = json!([{ "sku": "A", "amount": 1 }]);
        assert_eq!(old.insert("Price", &row.to_string()).await.unwrap(), 1);

        create_entity_tables(&db, tenant, std::slice::from_ref(&after))
            .await
            .unwrap();
        let new = EntityQueries::new(db.clone(), std::slice::from_ref(&after), tenant).unwrap();
        let row = json!([{ "sku": "B", "amount": 2, "note": "n", "currency": "EUR" }]);
        assert_eq!(new.insert("Price", &row.to_string()).await.unwrap(), 1);
        let rows = sorted_rows(&new, "Price", None, &[("sku", false)]).await;
        let seen: Vec<(Value, Value, Value)> = rows
            .iter()
            .map(|r| (r["sku"].clone(), r["note"].clone(), r["currency"].clone()))
            .collect();
        assert_eq!(
            seen,
            [
                (json!("A"), Value::Null, Value::Null),
                (json!("B"), json!("n"), json!("EUR")),
            ],
            "{tenant}"
        );
        // Declaring the same fields again changes nothing.
        create_entity_tables(&db, tenant, std::slice::from_ref(&after))
            .await
            .unwrap();
    }
}

/// `name: func(field)` columns of an aggregate of items.
fn aggregate(columns: &[(&str, AggFunc, Option<&str>)], group_by: &[&str]) -> AggregateQuery {
    AggregateQuery {
        entity: "Item".into(),
        columns: columns
            .iter()
            .map(|(name, func, field)| AggregateColumn {
                name: (*name).into(),
                function: *func,
                field: field.map(str::to_string),
            })
            .collect(),
        filter: None,
        group_by: group_by.iter().map(|g| g.to_string()).collect(),
        order: Vec::new(),
        limit: None,
    }
}

async fn aggregates_count_sum_average_and_bound_their_groups(db: Database) {
    let a = capability(&db, "tenant-a").await;
    let b = capability(&db, "tenant-b").await;
    seed_items(&a).await;
    use AggFunc::{Avg, Count, Max, Min, Sum};
    let all = aggregate(
        &[
            ("n", Count, None),
            ("total", Sum, Some("score")),
            ("mean", Avg, Some("score")),
            ("heaviest", Max, Some("weight")),
            ("weighed", Count, Some("weight")),
            ("first_due", Min, Some("due")),
            ("last_seen", Max, Some("seen_at")),
        ],
        &[],
    );
    let rows = a.aggregate_rows(&all).await.unwrap();
    assert_eq!(
        Value::Object(rows[0].clone()),
        json!({
            "n": 8, "total": 44, "mean": 5.5, "heaviest": 1.5, "weighed": 6,
            "first_due": "2026-01-05", "last_seen": "2026-01-12T08:00:00.000000Z"
        })
    );
    // Over no rows: counts and sums are 0, the others null; another tenant has none of a's.
    let mut none = all.clone();
    none.filter = Some(one("score", CompareOp::Gt, json!(100)));
    let empty = json!({
        "n": 0, "total": 0, "mean": null, "heaviest": null, "weighed": 0,
        "first_due": null, "last_seen": null
    });
    assert_eq!(
        Value::Object(a.aggregate_rows(&none).await.unwrap()[0].clone()),
        empty
    );
    assert_eq!(
        Value::Object(b.aggregate_rows(&all).await.unwrap()[0].clone()),
        empty
    );

    // Groups, by a column descending, bounded; by default in the groups' order.
    let mut by_kind = aggregate(
        &[("n", Count, None), ("total", Sum, Some("score"))],
        &["kind"],
    );
    by_kind.order = vec![OrderBy {
        field: "total".into(),
        descending: true,
    }];
    by_kind.limit = Some(2);
    let groups = |rows: Vec<Map<String, Value>>| -> Vec<String> {
        rows.iter()
            .map(|r| format!("{}:{}:{}", r["kind"].as_str().unwrap(), r["n"], r["total"]))
            .collect()
    };
    assert_eq!(
        groups(a.aggregate_rows(&by_kind).await.unwrap()),
        ["fruit:4:23", "veg:3:17"]
    );
    by_kind.order.clear();
    by_kind.limit = None;
    by_kind.filter = Some(one("active", CompareOp::Eq, json!(true)));
    assert_eq!(
        groups(a.aggregate_rows(&by_kind).await.unwrap()),
        ["fruit:3:14", "other:1:4", "veg:2:15"]
    );
    let json_text = a
        .read_within(Read::Aggregate(&by_kind), &mut |_| Ok(()))
        .await
        .unwrap();
    assert!(json_text.starts_with("[{\"kind\":\"fruit\""), "{json_text}");

    // What the host refuses, whatever the guest sends.
    let refused = [
        aggregate(&[("s", Sum, Some("name"))], &[]),
        aggregate(&[("m", Min, Some("active"))], &[]),
        aggregate(&[("s", Sum, None)], &[]),
        aggregate(&[("n", Count, None)], &["meta"]),
        aggregate(&[], &[]),
        aggregate(&[("n", Count, None), ("n", Count, Some("score"))], &[]),
        aggregate(&[("kind", Count, None)], &["kind"]),
        aggregate(&[("x; DROP TABLE items", Count, None)], &[]),
        AggregateQuery {
            order: vec![OrderBy {
                field: "score".into(),
                descending: false,
            }],
            ..aggregate(&[("n", Count, None)], &["kind"])
        },
    ];
    for q in &refused {
        invalid(a.aggregate_rows(q).await);
    }
    denied(
        a.aggregate_rows(&aggregate(&[("s", Sum, Some("secret"))], &[]))
            .await,
    );
    denied(
        a.aggregate_rows(&aggregate(&[("n", Count, None)], &["secret"]))
            .await,
    );
}
