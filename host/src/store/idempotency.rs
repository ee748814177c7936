//! Idempotency keys of run requests (`Idempotency-Key` on `POST /jobs/{id}/run`): the first
//! request with a tenant's key claims it with the execution it is about to make and the answer it
//! gives; a request with the same key within [`KEY_TTL`] finds that claim and answers the same,
//! so the job runs once. The claim is one `INSERT … ON CONFLICT DO NOTHING` on the primary key
//! `(tenant_id, key)`, so two requests racing with one key make one execution on either
//! database.

use super::rows::{execute, fetch_one, RowExt as _};
use super::sql::{stmt, Param};
use super::Database;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// How long a key answers with its first response.
pub const KEY_TTL: chrono::Duration = chrono::Duration::hours(24);

/// A key's first use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstUse {
    pub job_id: String,
    pub execution_id: String,
    /// The JSON body answered to it.
    pub response: String,
}

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is this request's: make the execution it names.
    New,
    /// The key was used within [`KEY_TTL`]: answer as then.
    Used(FirstUse),
}

/// Claims `key` of `tenant` for `first` at `now` (keys of the tenant older than [`KEY_TTL`]
/// are forgotten first), or finds its first use.
pub async fn claim(
    db: &Database,
    tenant: &str,
    key: &str,
    first: &FirstUse,
    now: DateTime<Utc>,
) -> Result<Claim, sqlx::Error> {
    execute(
        db,
        &stmt(
            "DELETE FROM idempotency_keys WHERE tenant_id = ? AND created_at < ?",
            vec![Param::Text(tenant.into()), Param::DateTime(now - KEY_TTL)],
        ),
    )
    .await?;
    // A claim released between the insert and the read (its request failed) is claimed again.
    for _ in 0..3 {
        let inserted = execute(
            db,
            &stmt(
                "INSERT INTO idempotency_keys \
                 (tenant_id, key, job_id, execution_id, response, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, key) DO NOTHING",
                vec![
                    Param::Text(tenant.into()),
                    Param::Text(key.into()),
                    Param::Text(first.job_id.clone()),
                    Param::Text(first.execution_id.clone()),
                    Param::Text(first.response.clone()),
                    Param::DateTime(now),
                ],
            ),
        )
        .await?;
        if inserted == 1 {
            return Ok(Claim::New);
        }
        let row = fetch_one(
            db,
            &stmt(
                "SELECT job_id, execution_id, response FROM idempotency_keys \
                 WHERE tenant_id = ? AND key = ?",
                vec![Param::Text(tenant.into()), Param::Text(key.into())],
            ),
        )
        .await?;
        if let Some(r) = row {
            return Ok(Claim::Used(FirstUse {
                job_id: r.text("job_id").unwrap_or_default(),
                execution_id: r.text("execution_id").unwrap_or_default(),
                response: r.text("response").unwrap_or_default(),
            }));
        }
    }
    Err(sqlx::Error::Protocol(format!(
        "idempotency key `{key}` was claimed and released three times in a row"
    )))
}

/// Gives up the claim of `key` for `execution_id` (its request failed before the execution was
/// made), so that a retry runs the job.
pub async fn release(
    db: &Database,
    tenant: &str,
    key: &str,
    execution_id: Uuid,
) -> Result<(), sqlx::Error> {
    execute(
        db,
        &stmt(
            "DELETE FROM idempotency_keys WHERE tenant_id = ? AND key = ? AND execution_id = ?",
            vec![
                Param::Text(tenant.into()),
                Param::Text(key.into()),
                Param::Text(execution_id.to_string()),
            ],
        ),
    )
    .await?;
    Ok(())
}
