//! Keyset pages: rows in a fixed order after the last row of the previous page, and one row
//! more than the page holds (its presence says there is a next page). The HTTP API turns the
//! last row into an opaque cursor and back; the statements are here.

use super::rows::{fetch_all, JsonRow};
use super::sql::{Param, Stmt};
use super::Database;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Where a page newest first by a timestamp starts: after the row `(at, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct After {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

/// One page of a list newest first: `limit` rows after `after` (from the start when `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub after: Option<After>,
    pub limit: i64,
}

/// How a table's `id` column is typed on PostgreSQL.
#[derive(Debug, Clone, Copy)]
pub(crate) enum IdColumn {
    Uuid,
    Text,
}

/// Only the rows of the tenant `scope` names (all rows when `None`: the admin's view).
pub(crate) fn and_tenant(s: &mut Stmt, column: &str, scope: Option<&str>) {
    if let Some(tenant) = scope {
        s.sql(format!(" AND {column} = "));
        s.bind(Param::Text(tenant.into()));
    }
}

/// Runs `s` (a `SELECT … WHERE …` without order or limit) for `page`, newest first by
/// `column` then `id`: at most `page.limit + 1` rows.
pub(crate) async fn newest_first(
    db: &Database,
    mut s: Stmt,
    column: &str,
    id: IdColumn,
    page: &Page,
) -> Result<Vec<JsonRow>, sqlx::Error> {
    if let Some(after) = page.after {
        s.sql(format!(" AND ({column} < "));
        s.bind(Param::DateTime(after.at));
        s.sql(format!(" OR ({column} = "));
        s.bind(Param::DateTime(after.at));
        s.sql(" AND id < ");
        s.bind(match id {
            IdColumn::Uuid => Param::Uuid(after.id),
            IdColumn::Text => Param::Text(after.id.to_string()),
        });
        s.sql("))");
    }
    s.sql(format!(" ORDER BY {column} DESC, id DESC LIMIT "));
    s.bind(Param::Int(page.limit + 1));
    fetch_all(db, &s).await
}

/// The rows of `select` (a `SELECT … FROM t` without `WHERE`) newest first by `column`, of the
/// tenant `scope` (all when `None`), for `page`.
pub(crate) async fn newest_of(
    db: &Database,
    select: &str,
    column: &str,
    id: IdColumn,
    scope: Option<&str>,
    page: &Page,
) -> Result<Vec<JsonRow>, sqlx::Error> {
    let mut s = Stmt::default();
    s.sql(format!("{select} WHERE 1 = 1"));
    and_tenant(&mut s, "tenant_id", scope);
    newest_first(db, s, column, id, page).await
}

/// The row of `select` (a `SELECT … FROM t` without `WHERE`) whose uuid is `id`, if the tenant
/// `scope` (any when `None`) has it.
pub(crate) async fn by_id(
    db: &Database,
    select: &str,
    id: Uuid,
    scope: Option<&str>,
) -> Result<Option<JsonRow>, sqlx::Error> {
    let mut s = Stmt::default();
    s.sql(format!("{select} WHERE id = "));
    s.bind(Param::Uuid(id));
    and_tenant(&mut s, "tenant_id", scope);
    super::rows::fetch_one(db, &s).await
}
