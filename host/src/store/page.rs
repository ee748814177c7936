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
