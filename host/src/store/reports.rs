//! Reading the reports jobs rendered, and the host's key for their download links.
//! Reports are written by the `report` capability through the recorder's store
//! ([`super::platform`]); their files live under the report directory.

use super::page::{by_id, newest_of, IdColumn, Page};
use super::rows::{execute, scalar, JsonRow};
use super::sql::{stmt, Param};
use super::Database;
use chrono::Utc;
use uuid::Uuid;

const COLUMNS: &str = "id, tenant_id, job, execution_id, format, size, name, created_at, \
    expires_at";

/// Reports newest first, of the tenant `scope` (all when `None`).
pub async fn list(
    db: &Database,
    scope: Option<&str>,
    page: &Page,
) -> Result<Vec<JsonRow>, sqlx::Error> {
    let select = format!("SELECT {COLUMNS} FROM reports");
    newest_of(db, &select, "created_at", IdColumn::Uuid, scope, page).await
}

/// The report `id`, if the tenant `scope` (any when `None`) has it.
pub async fn get(
    db: &Database,
    id: Uuid,
    scope: Option<&str>,
) -> Result<Option<JsonRow>, sqlx::Error> {
    by_id(db, &format!("SELECT {COLUMNS} FROM reports"), id, scope).await
}

/// The host's key for download links: read from `settings`, made on first use. Every process
/// of a deployment reads the same one, so each accepts the links of the others.
pub async fn signing_key(db: &Database) -> Result<Vec<u8>, sqlx::Error> {
    let read = stmt(
        "SELECT value FROM settings WHERE key = 'download_signing_key'",
        vec![],
    );
    if let Some(v) = scalar::<String>(db, &read).await? {
        return Ok(v.into_bytes());
    }
    let key = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    execute(
        db,
        &stmt(
            "INSERT INTO settings (key, value, created_at) VALUES ('download_signing_key', ?, ?) \
             ON CONFLICT (key) DO NOTHING",
            vec![Param::Text(key), Param::DateTime(Utc::now())],
        ),
    )
    .await?;
    // Another process may have won the race: its key is the one.
    Ok(scalar::<String>(db, &read)
        .await?
        .unwrap_or_default()
        .into_bytes())
}
