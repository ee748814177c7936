//! What a tenant stores, for its upload quotas: its jobs, the versions of each with the size of
//! their components and of their compiled artifacts, and whether a component is still stored by
//! any version at all.
//!
//! Storage is counted by a query, not a counter: `LENGTH` of a BLOB (SQLite) or `bytea`
//! (PostgreSQL) is read from the record header or the TOAST pointer, without reading the bytes,
//! and the quotas themselves bound the rows summed (jobs × versions kept). A query is exact
//! whatever deleted or added a version (another process, a crash between two statements), where
//! a counter would have to be kept right by every writer.

use super::rows::{execute, fetch_all, fetch_one, scalar, RowExt};
use super::sql::{stmt, Param};
use super::Database;
use std::collections::HashSet;

/// A tenant's jobs and the bytes of every version of their components.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub jobs: u64,
    pub bytes: u64,
}

/// One stored version of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVersion {
    pub version: i64,
    /// The SHA-256 of the component, hex (the name of its compiled artifact).
    pub sha256: String,
    /// The component's size in bytes.
    pub size: u64,
}

fn count(v: Option<i64>) -> u64 {
    v.and_then(|n| u64::try_from(n).ok()).unwrap_or(0)
}

/// The bytes of the guest runtime a version of `job_versions v` is stored apart from (0 for a
/// component stored whole): a version counts as its whole component, however it is stored.
const RUNTIME_BYTES: &str = "COALESCE((SELECT LENGTH(r.component) FROM guest_runtimes r \
                             WHERE r.sha256 = v.runtime_sha256), 0)";

/// What `tenant` stores.
pub async fn usage(db: &Database, tenant: &str) -> Result<Usage, sqlx::Error> {
    let row = fetch_one(
        db,
        &stmt(
            &format!(
                "SELECT (SELECT COUNT(*) FROM jobs WHERE tenant_id = ?) AS jobs, \
                 (SELECT CAST(COALESCE(SUM(LENGTH(v.component) + COALESCE(v.artifact_bytes, 0) \
                  + {RUNTIME_BYTES}), 0) AS BIGINT) FROM job_versions v \
                  JOIN jobs j ON j.id = v.job_id WHERE j.tenant_id = ?) AS bytes"
            ),
            vec![Param::Text(tenant.into()), Param::Text(tenant.into())],
        ),
    )
    .await?;
    Ok(row.map_or_else(Usage::default, |r| Usage {
        jobs: count(r.int("jobs")),
        bytes: count(r.int("bytes")),
    }))
}

/// The id of `tenant`'s job `name`, if it has one.
pub async fn job_id(
    db: &Database,
    tenant: &str,
    name: &str,
) -> Result<Option<String>, sqlx::Error> {
    let sql = "SELECT id FROM jobs WHERE tenant_id = ? AND name = ?";
    scalar(
        db,
        &stmt(
            sql,
            vec![Param::Text(tenant.into()), Param::Text(name.into())],
        ),
    )
    .await
}

/// The current version of a job (`None` when it does not exist).
pub async fn current_version(db: &Database, job_id: &str) -> Result<Option<i64>, sqlx::Error> {
    let sql = "SELECT version FROM jobs WHERE id = ?";
    scalar(db, &stmt(sql, vec![Param::Text(job_id.into())])).await
}

/// The stored versions of a job, newest first.
pub async fn versions(db: &Database, job_id: &str) -> Result<Vec<StoredVersion>, sqlx::Error> {
    Ok(fetch_all(
        db,
        &stmt(
            &format!(
                "SELECT version, sha256, LENGTH(v.component) + COALESCE(artifact_bytes, 0) \
                 + {RUNTIME_BYTES} AS size FROM job_versions v \
                 WHERE job_id = ? ORDER BY version DESC"
            ),
            vec![Param::Text(job_id.into())],
        ),
    )
    .await?
    .iter()
    .map(|r| StoredVersion {
        version: r.int("version").unwrap_or(0),
        sha256: r.text("sha256").unwrap_or_default(),
        size: count(r.int("size")),
    })
    .collect())
}

/// Deletes versions of a job; returns how many were there.
pub async fn delete_versions(
    db: &Database,
    job_id: &str,
    versions: &[i64],
) -> Result<u64, sqlx::Error> {
    if versions.is_empty() {
        return Ok(0);
    }
    let mut s = stmt(
        "DELETE FROM job_versions WHERE job_id = ? AND version IN (",
        vec![Param::Text(job_id.into())],
    );
    for (i, v) in versions.iter().enumerate() {
        if i > 0 {
            s.sql(", ");
        }
        s.bind(Param::Int(*v));
    }
    s.sql(")");
    execute(db, &s).await
}

/// Of `hashes` (hex SHA-256), those that some stored version of any job of any tenant has.
pub async fn stored_hashes(
    db: &Database,
    hashes: &[String],
) -> Result<HashSet<String>, sqlx::Error> {
    if hashes.is_empty() {
        return Ok(HashSet::new());
    }
    let mut s = stmt(
        "SELECT DISTINCT sha256 FROM job_versions WHERE sha256 IN (",
        vec![],
    );
    for (i, h) in hashes.iter().enumerate() {
        if i > 0 {
            s.sql(", ");
        }
        s.bind(Param::Text(h.clone()));
    }
    s.sql(")");
    Ok(fetch_all(db, &s)
        .await?
        .iter()
        .filter_map(|r| r.text("sha256"))
        .collect())
}

/// Records the size of the compiled artifact of a stored version (it counts towards the quota).
pub async fn set_artifact_bytes(
    db: &Database,
    job_id: &str,
    version: i64,
    bytes: u64,
) -> Result<(), sqlx::Error> {
    execute(
        db,
        &stmt(
            "UPDATE job_versions SET artifact_bytes = ? WHERE job_id = ? AND version = ?",
            vec![
                Param::Int(i64::try_from(bytes).unwrap_or(i64::MAX)),
                Param::Text(job_id.into()),
                Param::Int(version),
            ],
        ),
    )
    .await?;
    Ok(())
}
