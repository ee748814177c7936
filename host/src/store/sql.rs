//! Dialect-independent statements: SQL text with typed parameters, turned into a sqlx
//! [`QueryBuilder`] for SQLite or PostgreSQL. The data capability and the platform's own tables
//! both build their statements this way, so values only ever travel as bound parameters.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use codeai_ir::FieldType;
use serde_json::Value;
use sqlx::{Postgres, QueryBuilder, Sqlite};
use uuid::Uuid;

/// A checked, typed value to bind.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// NULL of a column type (PostgreSQL needs the type of a NULL parameter).
    Null(FieldType),
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
    Uuid(Uuid),
    DateTime(DateTime<Utc>),
    Date(NaiveDate),
    Json(Value),
    /// A blob (the platform's stored components; no entity field has this type).
    Bytes(Vec<u8>),
}

/// A statement as SQL text and bound parameters in order, independent of the dialect.
#[derive(Debug, Clone, Default)]
pub struct Stmt {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone)]
pub(crate) enum Piece {
    Sql(String),
    Bind(Param),
}

impl Stmt {
    pub(crate) fn sql(&mut self, sql: impl Into<String>) {
        self.pieces.push(Piece::Sql(sql.into()));
    }

    pub(crate) fn bind(&mut self, param: Param) {
        self.pieces.push(Piece::Bind(param));
    }

    /// A row of a `VALUES` list, `(?, ?, …)` binding `params`, after a comma unless it is the
    /// first row.
    pub(crate) fn row(&mut self, first: bool, params: impl IntoIterator<Item = Param>) {
        self.sql(if first { "(" } else { ", (" });
        for (i, p) in params.into_iter().enumerate() {
            if i > 0 {
                self.sql(", ");
            }
            self.bind(p);
        }
        self.sql(")");
    }
}

/// The text a `datetime` is stored as in SQLite and returned as from both databases.
pub(crate) fn datetime_text(value: &DateTime<Utc>) -> String {
    value.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn sqlite_builder(stmt: &Stmt) -> QueryBuilder<'static, Sqlite> {
    builder(stmt, |qb, param| {
        match param {
            Param::Null(_) => qb.push_bind(None::<String>),
            Param::Int(v) => qb.push_bind(*v),
            Param::Float(v) => qb.push_bind(*v),
            Param::Bool(v) => qb.push_bind(*v),
            Param::Text(v) => qb.push_bind(v.clone()),
            Param::Uuid(v) => qb.push_bind(v.hyphenated().to_string()),
            Param::DateTime(v) => qb.push_bind(datetime_text(v)),
            Param::Date(v) => qb.push_bind(v.format("%Y-%m-%d").to_string()),
            Param::Json(v) => qb.push_bind(v.to_string()),
            Param::Bytes(v) => qb.push_bind(v.clone()),
        };
    })
}

pub(crate) fn pg_builder(stmt: &Stmt) -> QueryBuilder<'static, Postgres> {
    builder(stmt, |qb, param| {
        match param {
            Param::Null(FieldType::Int) => qb.push_bind(None::<i64>),
            Param::Null(FieldType::Float) => qb.push_bind(None::<f64>),
            Param::Null(FieldType::Bool) => qb.push_bind(None::<bool>),
            Param::Null(FieldType::String) => qb.push_bind(None::<String>),
            Param::Null(FieldType::Uuid) => qb.push_bind(None::<Uuid>),
            Param::Null(FieldType::Datetime) => qb.push_bind(None::<DateTime<Utc>>),
            Param::Null(FieldType::Date) => qb.push_bind(None::<NaiveDate>),
            Param::Null(FieldType::Json) => qb.push_bind(None::<sqlx::types::Json<Value>>),
            Param::Int(v) => qb.push_bind(*v),
            Param::Float(v) => qb.push_bind(*v),
            Param::Bool(v) => qb.push_bind(*v),
            Param::Text(v) => qb.push_bind(v.clone()),
            Param::Uuid(v) => qb.push_bind(*v),
            Param::DateTime(v) => qb.push_bind(*v),
            Param::Date(v) => qb.push_bind(*v),
            Param::Json(v) => qb.push_bind(sqlx::types::Json(v.clone())),
            Param::Bytes(v) => qb.push_bind(v.clone()),
        };
    })
}

/// The statement's SQL pushed as it is and its parameters bound by `bind`, in order.
fn builder<DB: sqlx::Database>(
    stmt: &Stmt,
    bind: impl Fn(&mut QueryBuilder<'static, DB>, &Param),
) -> QueryBuilder<'static, DB> {
    let mut qb = QueryBuilder::new("");
    for piece in &stmt.pieces {
        match piece {
            Piece::Sql(sql) => {
                qb.push(sql);
            }
            Piece::Bind(param) => bind(&mut qb, param),
        }
    }
    qb
}

/// A statement from SQL with `?` placeholders and the parameters in order (a missing parameter
/// binds a NULL text). The SQL must not contain a literal `?`.
pub(crate) fn stmt(sql: &str, params: Vec<Param>) -> Stmt {
    let mut s = Stmt::default();
    let mut params = params.into_iter();
    let mut pieces = sql.split('?');
    if let Some(first) = pieces.next() {
        s.sql(first);
    }
    for piece in pieces {
        s.bind(params.next().unwrap_or(Param::Null(FieldType::String)));
        s.sql(piece);
    }
    s
}
