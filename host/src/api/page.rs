//! Cursor pagination: a page is `limit` rows in a fixed order plus an opaque cursor (the sort
//! key of its last row) that the next request passes back.

use super::error::ApiError;
use crate::store::rows::{fetch_all, JsonRow, RowExt};
use crate::store::sql::{Param, Stmt};
use crate::store::Database;
use chrono::Utc;
use uuid::Uuid;

/// `limit` checked: 1 to 500, `default` when absent.
pub(super) fn page_limit(limit: Option<i64>, default: i64) -> Result<i64, ApiError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=500).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(
            "invalid_query",
            format!("limit {n} is outside 1..=500"),
        )),
    }
}

/// A cursor: the sort key of the last row of a page, opaque to clients.
pub(super) fn encode_cursor(parts: &[&str]) -> String {
    hex::encode(parts.join("\u{1f}"))
}

fn bad_cursor() -> ApiError {
    ApiError::bad_request("invalid_cursor", "the cursor is not one this API gave")
}

pub(super) fn decode_cursor(cursor: &str, n: usize) -> Result<Vec<String>, ApiError> {
    let bytes = hex::decode(cursor).map_err(|_| bad_cursor())?;
    let text = String::from_utf8(bytes).map_err(|_| bad_cursor())?;
    let parts: Vec<String> = text.split('\u{1f}').map(str::to_string).collect();
    if parts.len() != n {
        return Err(bad_cursor());
    }
    Ok(parts)
}

/// How a table's `id` column is typed on PostgreSQL.
#[derive(Clone, Copy)]
pub(super) enum IdColumn {
    Uuid,
    Text,
}

/// Appends the page after `cursor`, newest first by `column` then `id`, and `LIMIT limit + 1`
/// (the extra row tells whether there is a next page).
fn newest_first(
    s: &mut Stmt,
    column: &str,
    id: IdColumn,
    cursor: Option<&str>,
    limit: i64,
) -> Result<(), ApiError> {
    if let Some(c) = cursor {
        let c = decode_cursor(c, 2)?;
        let at = chrono::DateTime::parse_from_rfc3339(&c[0])
            .map_err(|_| bad_cursor())?
            .with_timezone(&Utc);
        let uuid = Uuid::parse_str(&c[1]).map_err(|_| bad_cursor())?;
        s.sql(format!(" AND ({column} < "));
        s.bind(Param::DateTime(at));
        s.sql(format!(" OR ({column} = "));
        s.bind(Param::DateTime(at));
        s.sql(" AND id < ");
        s.bind(match id {
            IdColumn::Uuid => Param::Uuid(uuid),
            IdColumn::Text => Param::Text(c[1].clone()),
        });
        s.sql("))");
    }
    s.sql(format!(" ORDER BY {column} DESC, id DESC LIMIT "));
    s.bind(Param::Int(limit + 1));
    Ok(())
}

/// Runs `s` for one page, newest first by `column` then `id`, after `cursor`: the page's rows
/// and the cursor of the next page, if there is one.
pub(super) async fn fetch_newest_first(
    db: &Database,
    mut s: Stmt,
    column: &str,
    id: IdColumn,
    cursor: Option<&str>,
    limit: i64,
) -> Result<(Vec<JsonRow>, Option<String>), ApiError> {
    newest_first(&mut s, column, id, cursor, limit)?;
    let mut rows = fetch_all(db, &s).await?;
    let next = next_page(&mut rows, limit, column);
    Ok((rows, next))
}

/// Cuts `rows` to the page; the cursor of the next page, if there is one.
pub(super) fn next_page(rows: &mut Vec<JsonRow>, limit: i64, column: &str) -> Option<String> {
    if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| {
            encode_cursor(&[
                &r.text(column).unwrap_or_default(),
                &r.text("id").unwrap_or_default(),
            ])
        })
    } else {
        None
    }
}
