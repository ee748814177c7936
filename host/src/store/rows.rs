//! Statements run the same on both databases: rows as JSON objects (what the HTTP API reads),
//! typed rows and scalars (what code that knows its columns reads), and writes.
//!
//! Each column is decoded by its database type: integers and floats as numbers, booleans
//! (PostgreSQL `BOOLEAN`) as `true`/`false`, timestamps as RFC 3339 UTC text with microseconds
//! (PostgreSQL `TIMESTAMPTZ`; SQLite stores that text already), UUIDs as hyphenated text, JSON as
//! JSON, everything else as text.

use super::sql::{datetime_text, Stmt};
use super::Database;
use chrono::{DateTime, Utc};
use serde_json::{Map, Number, Value};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Column as _, ColumnIndex, Row, TypeInfo as _, ValueRef as _};
use sqlx::{Decode, FromRow, Postgres, Sqlite, Type};

/// One row: column name → value.
pub type JsonRow = Map<String, Value>;

/// Runs `$body` once per database kind, with `$pool` the pool, `$builder` the dialect's
/// statement builder and `$row` its row-to-JSON reader: the code is written once and compiled
/// for each database.
macro_rules! per_database {
    ($db:expr, |$pool:ident, $builder:ident, $row:ident| $body:expr) => {
        match $db {
            Database::Sqlite($pool) => {
                #[allow(unused_variables)]
                let ($builder, $row) = (
                    $crate::store::sql::sqlite_builder,
                    $crate::store::rows::sqlite_row,
                );
                $body
            }
            Database::Postgres($pool) => {
                #[allow(unused_variables)]
                let ($builder, $row) =
                    ($crate::store::sql::pg_builder, $crate::store::rows::pg_row);
                $body
            }
        }
    };
}
pub(super) use per_database;

/// Every row of a statement.
pub(crate) async fn fetch_all(db: &Database, s: &Stmt) -> Result<Vec<JsonRow>, sqlx::Error> {
    per_database!(db, |pool, builder, row| {
        let rows = builder(s).build().fetch_all(pool).await?;
        rows.iter().map(row).collect()
    })
}

/// The first row of a statement, if any.
pub(crate) async fn fetch_one(db: &Database, s: &Stmt) -> Result<Option<JsonRow>, sqlx::Error> {
    per_database!(db, |pool, builder, row| {
        let first = builder(s).build().fetch_optional(pool).await?;
        first.as_ref().map(row).transpose()
    })
}

/// Runs statements in order in one transaction; returns the rows they changed.
pub(crate) async fn execute_all(db: &Database, stmts: &[Stmt]) -> Result<u64, sqlx::Error> {
    Ok(execute_each(db, stmts).await?.iter().sum())
}

/// [`execute_all`], returning the rows each statement changed. One statement is written
/// without `BEGIN` and `COMMIT` around it (it is atomic alone): on SQLite each is a hand-over
/// to the connection's thread and back, on PostgreSQL a round trip.
pub(crate) async fn execute_each(db: &Database, stmts: &[Stmt]) -> Result<Vec<u64>, sqlx::Error> {
    if let [one] = stmts {
        return Ok(vec![execute(db, one).await?]);
    }
    let mut changed = Vec::with_capacity(stmts.len());
    per_database!(db, |pool, builder, row| {
        let mut tx = pool.begin().await?;
        for s in stmts {
            let done = builder(s).build().execute(&mut *tx).await?;
            changed.push(done.rows_affected());
        }
        tx.commit().await?;
    });
    Ok(changed)
}

/// Runs a statement; returns the rows it changed.
pub(crate) async fn execute(db: &Database, s: &Stmt) -> Result<u64, sqlx::Error> {
    per_database!(db, |pool, builder, row| {
        Ok(builder(s).build().execute(pool).await?.rows_affected())
    })
}

/// A row type both databases read: a tuple or a `sqlx::FromRow` struct.
pub(crate) trait Record:
    Send + Unpin + for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow>
{
}

impl<T> Record for T where
    T: Send + Unpin + for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow>
{
}

/// A column type both databases decode.
pub(crate) trait Column:
    Send
    + Unpin
    + for<'r> Decode<'r, Sqlite>
    + Type<Sqlite>
    + for<'r> Decode<'r, Postgres>
    + Type<Postgres>
{
}

impl<T> Column for T where
    T: Send
        + Unpin
        + for<'r> Decode<'r, Sqlite>
        + Type<Sqlite>
        + for<'r> Decode<'r, Postgres>
        + Type<Postgres>
{
}

/// Runs `stmts` in order, then `query`, in one transaction; returns the query's rows as `T`s
/// (an `INSERT … RETURNING` written with the statements it must not be without).
pub(crate) async fn execute_then_fetch<T: Record>(
    db: &Database,
    stmts: &[Stmt],
    query: &Stmt,
) -> Result<Vec<T>, sqlx::Error> {
    per_database!(db, |pool, builder, row| {
        let mut tx = pool.begin().await?;
        for s in stmts {
            builder(s).build().execute(&mut *tx).await?;
        }
        let rows = builder(query).build_query_as().fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(rows)
    })
}

/// Every row of a statement as a `T` (a tuple or a `sqlx::FromRow` struct), the same on both
/// databases: what code that knows its columns reads.
pub(crate) async fn fetch_as<T: Record>(db: &Database, s: &Stmt) -> Result<Vec<T>, sqlx::Error> {
    per_database!(db, |pool, builder, row| {
        builder(s).build_query_as().fetch_all(pool).await
    })
}

/// The first row of a statement as a `T`, if any (see [`fetch_as`]).
pub(crate) async fn fetch_optional_as<T: Record>(
    db: &Database,
    s: &Stmt,
) -> Result<Option<T>, sqlx::Error> {
    per_database!(db, |pool, builder, row| {
        builder(s).build_query_as().fetch_optional(pool).await
    })
}

/// The first column of every row of a statement.
pub(crate) async fn scalars<T: Column>(db: &Database, s: &Stmt) -> Result<Vec<T>, sqlx::Error> {
    per_database!(db, |pool, builder, row| {
        builder(s).build_query_scalar().fetch_all(pool).await
    })
}

/// The first column of the first row of a statement, if there is a row.
pub(crate) async fn scalar<T: Column>(db: &Database, s: &Stmt) -> Result<Option<T>, sqlx::Error> {
    per_database!(db, |pool, builder, row| {
        builder(s).build_query_scalar().fetch_optional(pool).await
    })
}

fn float(v: f64) -> Value {
    Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// A row as JSON: NULL as null, every other column as `value` reads it.
fn json_row<R: Row>(
    row: &R,
    value: fn(&R, usize) -> Result<Value, sqlx::Error>,
) -> Result<JsonRow, sqlx::Error>
where
    usize: ColumnIndex<R>,
{
    let mut out = Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        let value = if row.try_get_raw(i)?.is_null() {
            Value::Null
        } else {
            value(row, i)?
        };
        out.insert(col.name().to_string(), value);
    }
    Ok(out)
}

pub(super) fn sqlite_row(row: &SqliteRow) -> Result<JsonRow, sqlx::Error> {
    json_row(row, |row, i| {
        let raw = row.try_get_raw(i)?;
        // SQLite is dynamically typed: the value's own type decides.
        Ok(match raw.type_info().name() {
            "INTEGER" | "INT" | "BIGINT" | "BOOLEAN" => Value::from(row.try_get::<i64, _>(i)?),
            "REAL" | "FLOAT" | "DOUBLE" => float(row.try_get::<f64, _>(i)?),
            "BLOB" => Value::String(format!("<{} bytes>", row.try_get::<Vec<u8>, _>(i)?.len())),
            _ => Value::String(row.try_get::<String, _>(i)?),
        })
    })
}

pub(super) fn pg_row(row: &PgRow) -> Result<JsonRow, sqlx::Error> {
    json_row(row, |row, i| {
        Ok(match row.column(i).type_info().name() {
            "INT8" => Value::from(row.try_get::<i64, _>(i)?),
            "INT4" => Value::from(row.try_get::<i32, _>(i)?),
            "INT2" => Value::from(row.try_get::<i16, _>(i)?),
            "FLOAT8" => float(row.try_get::<f64, _>(i)?),
            "FLOAT4" => float(f64::from(row.try_get::<f32, _>(i)?)),
            "NUMERIC" => Value::String(row.try_get::<String, _>(i).unwrap_or_default()),
            "BOOL" => Value::Bool(row.try_get::<bool, _>(i)?),
            "TIMESTAMPTZ" => Value::String(datetime_text(&row.try_get::<DateTime<Utc>, _>(i)?)),
            "UUID" => Value::String(row.try_get::<uuid::Uuid, _>(i)?.hyphenated().to_string()),
            "JSON" | "JSONB" => row.try_get::<sqlx::types::Json<Value>, _>(i)?.0,
            "BYTEA" => Value::String(format!("<{} bytes>", row.try_get::<Vec<u8>, _>(i)?.len())),
            _ => Value::String(row.try_get::<String, _>(i)?),
        })
    })
}

/// Typed access to a [`JsonRow`]'s columns.
pub trait RowExt {
    fn text(&self, col: &str) -> Option<String>;
    fn int(&self, col: &str) -> Option<i64>;
    /// A boolean column (SQLite stores 0/1).
    fn flag(&self, col: &str) -> bool;
    /// A column holding JSON text (SQLite) or JSON (PostgreSQL), parsed.
    fn json(&self, col: &str) -> Option<Value>;
    fn time(&self, col: &str) -> Option<DateTime<Utc>>;
}

impl RowExt for JsonRow {
    fn text(&self, col: &str) -> Option<String> {
        match self.get(col)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    fn int(&self, col: &str) -> Option<i64> {
        match self.get(col)? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    fn flag(&self, col: &str) -> bool {
        match self.get(col) {
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_i64().unwrap_or(0) != 0,
            _ => false,
        }
    }

    fn json(&self, col: &str) -> Option<Value> {
        match self.get(col)? {
            Value::String(s) => serde_json::from_str(s).ok(),
            Value::Null => None,
            other => Some(other.clone()),
        }
    }

    fn time(&self, col: &str) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(&self.text(col)?)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}
