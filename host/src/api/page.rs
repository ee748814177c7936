//! Cursor pagination: a page is `limit` rows in a fixed order plus an opaque cursor (the sort
//! key of its last row) that the next request passes back. The statements are the store's
//! ([`crate::store::page`]).

use super::error::ApiError;
use crate::store::page::{After, Page};
use crate::store::rows::{JsonRow, RowExt};
use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;
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
fn encode_cursor(parts: &[&str]) -> String {
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

/// The page a list newest first asks for: `limit` (1–500, `default` when absent) rows after
/// `cursor`.
pub(super) fn requested_page(
    cursor: Option<&str>,
    limit: Option<i64>,
    default: i64,
) -> Result<Page, ApiError> {
    let limit = page_limit(limit, default)?;
    let after = match cursor {
        None => None,
        Some(c) => {
            let c = decode_cursor(c, 2)?;
            let at = chrono::DateTime::parse_from_rfc3339(&c[0])
                .map_err(|_| bad_cursor())?
                .with_timezone(&Utc);
            let id = Uuid::parse_str(&c[1]).map_err(|_| bad_cursor())?;
            Some(After { at, id })
        }
    };
    Ok(Page { after, limit })
}

/// A page of a list: `{"data": [...], "next_cursor": ...}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Listing<T> {
    pub data: Vec<T>,
    /// Pass it back as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Listing<T> {
    /// The page of `rows` (the store gives one more than the page holds, which says there is a
    /// next page), each shown by `item`.
    pub(super) fn of(
        mut rows: Vec<JsonRow>,
        limit: i64,
        column: &str,
        item: impl Fn(&JsonRow) -> T,
    ) -> Listing<T> {
        let next_cursor = next_page(&mut rows, limit, column);
        Listing {
            data: rows.iter().map(item).collect(),
            next_cursor,
        }
    }
}

/// Cuts `rows` (the store gives one more than the page) to the page; the cursor of the next
/// page, if there is one: the `column` and `id` of its last row.
fn next_page(rows: &mut Vec<JsonRow>, limit: i64, column: &str) -> Option<String> {
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
