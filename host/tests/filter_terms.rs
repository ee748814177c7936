//! The `data` capability's comparisons of fields (`term-comparison`) as a hostile guest could send
//! them, straight to `EntityQueries` on SQLite and on PostgreSQL: every limit and check of
//! `store/query.rs` is committed here — undeclared and json columns, operands after their users,
//! too many terms, a shared term that would expand without end, types that do not mix — and a
//! few honest comparisons whose values are typed by the other side.

#[macro_use]
mod common;
use common::{run_postgres, run_sqlite};

use codeai_host::store::entities::create_entity_tables;
use codeai_host::store::query::{EntityQueries, QueryError, MAX_TERMS};
use codeai_host::store::Database;
use codeai_host::wasm::data::{
    ArithOp, CompareOp, Filter, FilterNode, OrderBy, Query, Term, TermComparison, TermFunc,
};
use codeai_ir::{EntityDecl, FieldDecl, FieldType};
use serde_json::json;

on_both_databases!(
    hostile_term_comparisons_are_refused,
    values_take_the_type_of_the_other_side,
);

fn entity() -> EntityDecl {
    let field = |name: &str, ty, optional| FieldDecl {
        name: name.into(),
        ty,
        primary: name == "id",
        optional,
        unique: false,
    };
    EntityDecl {
        name: "Part".into(),
        table: "terms_parts".into(),
        fields: vec![
            field("id", FieldType::Uuid, false),
            field("name", FieldType::String, false),
            field("stock", FieldType::Int, false),
            field("minimum", FieldType::Int, false),
            field("seen_at", FieldType::Datetime, true),
            field("due", FieldType::Date, true),
            field("meta", FieldType::Json, true),
        ],
    }
}

async fn capability(db: &Database) -> EntityQueries {
    codeai_host::store::migrate::migrate_up(db).await.unwrap();
    create_entity_tables(db, "default", &[entity()])
        .await
        .unwrap();
    let data = EntityQueries::new(db.clone(), &[entity()], "default").unwrap();
    let rows = json!([
        { "name": "Bolt", "stock": 3, "minimum": 5, "seen_at": "2026-01-12T23:30:00+02:00", "due": "2026-02-01" },
        { "name": "nut", "stock": 9, "minimum": 2, "seen_at": "2026-01-10T08:00:00Z" },
    ]);
    assert_eq!(data.insert("Part", &rows.to_string()).await.unwrap(), 2);
    data
}

fn terms(terms: Vec<Term>, left: u32, op: CompareOp, right: u32) -> Filter {
    Filter {
        nodes: vec![FilterNode::Terms(TermComparison {
            terms,
            left,
            op,
            right,
        })],
        root: 0,
    }
}

/// `a op b`.
fn pair(a: Term, op: CompareOp, b: Term) -> Filter {
    terms(vec![a, b], 0, op, 1)
}

fn column(name: &str) -> Term {
    Term::Column(name.into())
}

fn value(v: serde_json::Value) -> Term {
    Term::Value(v.to_string())
}

async fn names(data: &EntityQueries, filter: Filter) -> Result<Vec<String>, QueryError> {
    let rows = data
        .select_rows(&Query {
            entity: "Part".into(),
            filter: Some(filter),
            order: vec![OrderBy {
                field: "name".into(),
                descending: false,
            }],
            limit: None,
        })
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect())
}

#[track_caller]
fn refused(result: Result<Vec<String>, QueryError>, kind: &str, contains: &str) {
    let message = match (&result, kind) {
        (Err(QueryError::Invalid(m)), "invalid") | (Err(QueryError::Denied(m)), "denied") => m,
        _ => panic!("expected {kind} ({contains}), got {result:?}"),
    };
    assert!(message.contains(contains), "{message}");
}

async fn hostile_term_comparisons_are_refused(db: Database) {
    let data = capability(&db).await;
    use CompareOp::{Eq, Le, Like};
    let many = std::iter::repeat_with(|| column("stock"))
        .take(MAX_TERMS + 1)
        .collect();
    // Each term adding the previous one to itself: 2^63 leaves if expanded; refused early.
    let mut doubling = vec![column("stock")];
    for i in 0..(MAX_TERMS as u32 - 1) {
        doubling.push(Term::Arith((ArithOp::Add, i, i)));
    }
    let last = doubling.len() as u32 - 1;
    let (stock, name) = (column("stock"), column("name"));
    // Each filter is refused as (kind, with these words).
    let cases: Vec<(Filter, &str, &str)> = vec![
        // A column the manifest does not declare; a json column.
        (
            pair(stock.clone(), Le, column("secret")),
            "denied",
            "no field `secret`",
        ),
        (pair(column("meta"), Eq, name.clone()), "invalid", "json"),
        // An operand that comes after its user (a cycle would need one); a side out of range.
        (
            terms(
                vec![Term::Arith((ArithOp::Add, 1, 1)), stock.clone()],
                0,
                Le,
                1,
            ),
            "invalid",
            "does not come before it",
        ),
        (
            terms(vec![stock.clone()], 0, Le, 7),
            "invalid",
            "out of range",
        ),
        // Too many terms, and too many once expanded.
        (terms(many, 0, Le, 1), "invalid", "terms"),
        (
            terms(doubling, last, Le, 0),
            "invalid",
            "expands to more than",
        ),
        // Operators that do not compare terms, and types that do not mix.
        (
            pair(stock.clone(), Like, column("minimum")),
            "invalid",
            "=, !=, <, <=, > or >=",
        ),
        (
            terms(
                vec![
                    name.clone(),
                    value(json!(1)),
                    Term::Arith((ArithOp::Mul, 0, 1)),
                    stock.clone(),
                ],
                2,
                Le,
                3,
            ),
            "invalid",
            "needs numbers",
        ),
        (
            terms(
                vec![
                    column("due"),
                    Term::Apply((TermFunc::Hour, 0)),
                    value(json!(3)),
                ],
                1,
                Eq,
                2,
            ),
            "invalid",
            "hour() does not apply to date values",
        ),
        (pair(name, Eq, stock.clone()), "invalid", "cannot compare"),
        (
            pair(column("seen_at"), Le, column("due")),
            "invalid",
            "cannot compare",
        ),
        (
            pair(stock, Le, value(json!([1]))),
            "invalid",
            "a number, a string or a boolean",
        ),
    ];
    for (filter, kind, contains) in cases {
        refused(names(&data, filter).await, kind, contains);
    }
}

async fn values_take_the_type_of_the_other_side(db: Database) {
    let data = capability(&db).await;
    // A string compared with a datetime column is a datetime (the offset is honoured).
    let after = pair(
        column("seen_at"),
        CompareOp::Lt,
        value(json!("2026-01-12T22:00:00+00:00")),
    );
    assert_eq!(names(&data, after).await.unwrap(), ["Bolt", "nut"]);
    let after = pair(
        column("seen_at"),
        CompareOp::Gt,
        value(json!("2026-01-12T21:00:00Z")),
    );
    assert_eq!(names(&data, after).await.unwrap(), ["Bolt"]);
    // Fields against fields, and functions of them.
    let low = pair(column("stock"), CompareOp::Lt, column("minimum"));
    assert_eq!(names(&data, low).await.unwrap(), ["Bolt"]);
    let upper = terms(
        vec![
            column("name"),
            Term::Apply((TermFunc::Uppercase, 0)),
            value(json!("NUT")),
        ],
        1,
        CompareOp::Eq,
        2,
    );
    assert_eq!(names(&data, upper).await.unwrap(), ["nut"]);
    // Division by zero matches nothing on both databases (no error).
    let by_zero = terms(
        vec![
            column("stock"),
            value(json!(0)),
            Term::Arith((ArithOp::Div, 0, 1)),
            value(json!(0)),
        ],
        2,
        CompareOp::Ge,
        3,
    );
    assert!(names(&data, by_zero).await.unwrap().is_empty());
}
