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

    /// The SQL text with `?` for each bound parameter (what [`stmt`] splits), and the parameters.
    pub(crate) fn text_and_params(&self) -> (String, Vec<Param>) {
        let mut text = String::new();
        let mut params = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Sql(sql) => text.push_str(sql),
                Piece::Bind(p) => {
                    text.push('?');
                    params.push(p.clone());
                }
            }
        }
        (text, params)
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

    /// Rows of `nulls` after the `rows` rows of a `VALUES` list, up to the next power of two.
    /// A statement that takes any number of rows is then one of a few SQL texts, which each
    /// connection keeps prepared: preparing a text of hundreds of rows costs more than binding
    /// them, and on SQLite it would take the write lock's time (BENCHMARKS.md, 2026-12-05). The
    /// statement must leave a row of NULLs out (its `WHERE` compares the row's id).
    pub(crate) fn pad_rows(&mut self, rows: usize, nulls: &[Param]) {
        for i in rows..rows.next_power_of_two() {
            self.row(i == 0, nulls.iter().cloned());
        }
    }
}

/// One `INSERT … VALUES (…), (…) …` of many single-row inserts of one shape — the same SQL
/// text, one `VALUES` row each, nothing after the row but a clause without parentheses (such
/// as `ON CONFLICT DO NOTHING`) — their rows in order. `None` when they are not of that shape
/// (or there are none): the caller runs them one by one.
pub(crate) fn merge_rows<'a>(stmts: impl IntoIterator<Item = &'a Stmt>) -> Option<Stmt> {
    let mut stmts = stmts.into_iter();
    let (sql, mut params) = stmts.next()?.text_and_params();
    if sql.contains('\'') || sql.contains(';') {
        return None;
    }
    let close = sql.rfind(')')?;
    let open = sql[..close].rfind('(')?;
    let (head, row, tail) = (&sql[..open], &sql[open..=close], &sql[close + 1..]);
    if !head.trim_end().to_ascii_uppercase().ends_with(" VALUES") || tail.contains('(') {
        return None;
    }
    let mut merged = format!("{head}{row}");
    for s in stmts {
        let (other, more) = s.text_and_params();
        if other != sql {
            return None;
        }
        merged.push_str(", ");
        merged.push_str(row);
        params.extend(more);
    }
    merged.push_str(tail);
    Some(stmt(&merged, params))
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

#[cfg(test)]
mod tests {
    use super::{merge_rows, stmt, FieldType, Param, Stmt};

    /// The statement's SQL with `?` for its parameters, and its parameters.
    fn shown(s: &Stmt) -> (String, String) {
        let (sql, params) = s.text_and_params();
        let params: Vec<String> = params.iter().map(|p| format!("{p:?}")).collect();
        (sql, params.join(" "))
    }

    fn insert(n: i64, name: &str) -> Stmt {
        stmt(
            "INSERT INTO t (a, b, c) VALUES (?, ?, 0) ON CONFLICT DO NOTHING",
            vec![Param::Int(n), Param::Text(name.into())],
        )
    }

    #[test]
    fn single_row_inserts_of_one_shape_are_one_insert_of_their_rows_in_order() {
        let merged = merge_rows(&[insert(1, "x"), insert(2, "y"), insert(3, "z")]).unwrap();
        let (sql, params) = shown(&merged);
        assert_eq!(
            sql,
            "INSERT INTO t (a, b, c) VALUES (?, ?, 0), (?, ?, 0), (?, ?, 0) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            params,
            r#"Int(1) Text("x") Int(2) Text("y") Int(3) Text("z")"#
        );
        assert_eq!(
            shown(&merge_rows(&[insert(1, "x")]).unwrap()),
            shown(&insert(1, "x"))
        );
    }

    #[test]
    fn rows_are_padded_with_the_null_row_to_the_next_power_of_two() {
        let rows = |n: i64| {
            let mut s = Stmt::default();
            s.sql("WITH v (a, b) AS (VALUES ");
            for i in 0..n {
                s.row(i == 0, [Param::Int(i), Param::Int(i)]);
            }
            s.pad_rows(n as usize, &[Param::Null(FieldType::Int), Param::Int(-1)]);
            s.sql(")");
            s
        };
        let (three, params) = shown(&rows(3));
        assert_eq!(three, shown(&rows(4)).0, "3 rows and 4 are one text");
        assert_eq!(
            three,
            "WITH v (a, b) AS (VALUES (?, ?), (?, ?), (?, ?), (?, ?))"
        );
        assert!(
            params.ends_with("Int(2) Int(2) Null(Int) Int(-1)"),
            "{params}"
        );
        assert_eq!(shown(&rows(1)).0, "WITH v (a, b) AS (VALUES (?, ?))");
        assert_eq!(
            shown(&rows(5)).1.matches("Null(Int)").count(),
            3,
            "5 rows become 8"
        );
        assert_eq!(
            shown(&rows(0)).0,
            "WITH v (a, b) AS (VALUES (?, ?))",
            "none: one null row"
        );
    }

    #[test]
    fn statements_of_other_shapes_are_not_merged() {
        assert!(merge_rows(&[]).is_none());
        let other = stmt(
            "INSERT INTO t (a, b) VALUES (?, ?) ON CONFLICT DO NOTHING",
            vec![Param::Int(1), Param::Int(2)],
        );
        assert!(merge_rows(&[insert(1, "x"), other]).is_none(), "two shapes");
        let subquery = stmt(
            "INSERT INTO t (a, b) VALUES (?, (SELECT max(b) FROM t))",
            vec![Param::Int(1)],
        );
        assert!(merge_rows(&[subquery.clone(), subquery]).is_none());
        let update = stmt(
            "UPDATE t SET a = ? WHERE b IN (?)",
            vec![Param::Int(1), Param::Int(2)],
        );
        assert!(merge_rows(&[update.clone(), update]).is_none());
        let conflict = stmt(
            "INSERT INTO t (a) VALUES (?) ON CONFLICT (a) DO NOTHING",
            vec![Param::Int(1)],
        );
        assert!(merge_rows(&[conflict.clone(), conflict]).is_none());
    }
}
