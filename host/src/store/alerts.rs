//! The `alerts` table: an alert is `active` from when its condition starts until it clears,
//! then `resolved`. [`crate::alerts`] decides which conditions hold; this keeps the record.

use super::page::{and_tenant, newest_first, IdColumn, Page};
use super::rows::{execute, fetch_as, JsonRow};
use super::sql::{stmt, Param};
use super::Database;
use chrono::{DateTime, Utc};
use codeai_ir::FieldType;
use uuid::Uuid;

/// Which alerts a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Showing {
    Active,
    Resolved,
    All,
}

/// Alerts newest first by when they started, of the tenant `scope` (all when `None`).
pub async fn list(
    db: &Database,
    showing: Showing,
    scope: Option<&str>,
    page: &Page,
) -> Result<Vec<JsonRow>, sqlx::Error> {
    let mut s = stmt(
        "SELECT id, tenant_id, kind, subject, message, status, delivery, started_at, \
         last_seen_at, resolved_at FROM alerts WHERE 1 = 1",
        vec![],
    );
    let status = match showing {
        Showing::Active => Some("active"),
        Showing::Resolved => Some("resolved"),
        Showing::All => None,
    };
    if let Some(status) = status {
        s.sql(" AND status = ");
        s.bind(Param::Text(status.into()));
    }
    and_tenant(&mut s, "tenant_id", scope);
    newest_first(db, s, "started_at", IdColumn::Text, page).await
}

/// The active alerts: `(key, id)`.
pub async fn active(db: &Database) -> Result<Vec<(String, String)>, sqlx::Error> {
    fetch_as(
        db,
        &stmt("SELECT key, id FROM alerts WHERE status = 'active'", vec![]),
    )
    .await
}

/// How many alerts of each kind are active: `(kind, count)`.
pub async fn active_by_kind(db: &Database) -> Result<Vec<(String, i64)>, sqlx::Error> {
    fetch_as(
        db,
        &stmt(
            "SELECT kind, COUNT(*) AS n FROM alerts WHERE status = 'active' GROUP BY kind \
             ORDER BY kind",
            vec![],
        ),
    )
    .await
}

/// An alert whose condition has just started.
#[derive(Debug, Clone)]
pub struct NewAlert<'a> {
    /// What makes it one alert over time (`job_failed:<job id>`).
    pub key: &'a str,
    pub kind: &'a str,
    pub tenant: Option<&'a str>,
    pub subject: &'a str,
    pub message: &'a str,
    /// How it was delivered (`slack`, `outbox`, or why it was not).
    pub delivery: &'a str,
}

/// Records an alert as active from `now`.
pub async fn open(
    db: &Database,
    alert: &NewAlert<'_>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    execute(
        db,
        &stmt(
            "INSERT INTO alerts (id, tenant_id, key, kind, subject, message, status, \
             delivery, started_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?, ?)",
            vec![
                Param::Text(Uuid::new_v4().to_string()),
                alert
                    .tenant
                    .map_or(Param::Null(FieldType::String), |t| Param::Text(t.into())),
                Param::Text(alert.key.into()),
                Param::Text(alert.kind.into()),
                Param::Text(alert.subject.into()),
                Param::Text(alert.message.into()),
                Param::Text(alert.delivery.into()),
                Param::DateTime(now),
                Param::DateTime(now),
            ],
        ),
    )
    .await?;
    Ok(())
}

/// An active alert's condition still holds at `now`, with `message`.
pub async fn seen(
    db: &Database,
    id: &str,
    message: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    execute(
        db,
        &stmt(
            "UPDATE alerts SET last_seen_at = ?, message = ? WHERE id = ?",
            vec![
                Param::DateTime(now),
                Param::Text(message.into()),
                Param::Text(id.into()),
            ],
        ),
    )
    .await?;
    Ok(())
}

/// An active alert's condition cleared at `now`.
pub async fn resolve(db: &Database, id: &str, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    execute(
        db,
        &stmt(
            "UPDATE alerts SET status = 'resolved', resolved_at = ? WHERE id = ?",
            vec![Param::DateTime(now), Param::Text(id.into())],
        ),
    )
    .await?;
    Ok(())
}
