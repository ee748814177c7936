//! Tenants, their limits, and API tokens (stored as SHA-256 hashes; a token is shown once, when
//! it is made, and never stored).
//!
//! A token is `cai_` followed by 40 random hex digits. The admin token of the configuration
//! (`CODEAI_ADMIN_TOKEN`) is not stored: each process compares against it in memory. When it is
//! unset, an admin token is generated at the first start, stored hashed like any other, and
//! printed once.

use super::rows::{execute, fetch_all, fetch_one, JsonRow, RowExt};
use super::sql::{stmt, Param};
use super::Database;
use chrono::Utc;
use codeai_ir::FieldType;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

/// A tenant and its limits (`None`: the host's default).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    /// Executions of this tenant running at once.
    pub max_concurrent: Option<i64>,
    /// The memory cap of each execution, in bytes.
    pub memory_limit_bytes: Option<i64>,
    /// The fuel budget of each execution.
    pub fuel_budget: Option<i64>,
    /// Jobs it may have (upload quota).
    pub max_jobs: Option<i64>,
    /// Versions of each job kept; older unused ones are pruned (upload quota).
    pub max_versions: Option<i64>,
    /// Bytes of stored components, every version of every job (upload quota).
    pub max_bytes: Option<i64>,
}

/// Whom a token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Sees and changes everything.
    Admin,
    /// Sees and changes only its tenant's objects.
    Tenant(String),
}

/// Why a tenant or token cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("tenant names are 1 to 64 characters of a-z, 0-9, `-` and `_` (got `{0}`)")]
    BadName(String),
    #[error("tenant `{0}` exists already")]
    Exists(String),
    #[error("no tenant `{0}`")]
    Unknown(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Whether `tenant` is the operator's own: the default tenant, whose jobs the operator registers
/// (`codeai host run PATH`, `codeai run PATH`, uploads by the admin token without `?tenant=`).
/// The operator is trusted; every other tenant and its jobs are not (`SECURITY.md`).
pub fn is_operator(tenant: &str) -> bool {
    tenant == super::platform::DEFAULT_TENANT
}

/// The SHA-256 of a token, hex: what `tokens.token_hash` holds.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token.
pub fn new_token() -> String {
    format!(
        "cai_{}{}",
        Uuid::new_v4().simple(),
        &Uuid::new_v4().simple().to_string()[..8]
    )
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn tenant_of(row: &JsonRow) -> Tenant {
    Tenant {
        id: row.text("id").unwrap_or_default(),
        name: row.text("name").unwrap_or_default(),
        max_concurrent: row.int("max_concurrent"),
        memory_limit_bytes: row.int("memory_limit_bytes"),
        fuel_budget: row.int("fuel_budget"),
        max_jobs: row.int("max_jobs"),
        max_versions: row.int("max_versions"),
        max_bytes: row.int("max_bytes"),
    }
}

fn opt_int(v: Option<i64>) -> Param {
    v.map_or(Param::Null(FieldType::Int), Param::Int)
}

/// Creates a tenant (its id is its name).
pub async fn create_tenant(
    db: &Database,
    name: &str,
    max_concurrent: Option<i64>,
    memory_limit_bytes: Option<i64>,
    fuel_budget: Option<i64>,
) -> Result<Tenant, TenantError> {
    if !valid_name(name) {
        return Err(TenantError::BadName(name.to_string()));
    }
    if tenant(db, name).await?.is_some() {
        return Err(TenantError::Exists(name.to_string()));
    }
    execute(
        db,
        &stmt(
            "INSERT INTO tenants (id, name, max_concurrent, memory_limit_bytes, fuel_budget, \
             created_at) VALUES (?, ?, ?, ?, ?, ?)",
            vec![
                Param::Text(name.into()),
                Param::Text(name.into()),
                opt_int(max_concurrent),
                opt_int(memory_limit_bytes),
                opt_int(fuel_budget),
                Param::DateTime(Utc::now()),
            ],
        ),
    )
    .await?;
    Ok(Tenant {
        id: name.to_string(),
        name: name.to_string(),
        max_concurrent,
        memory_limit_bytes,
        fuel_budget,
        max_jobs: None,
        max_versions: None,
        max_bytes: None,
    })
}

/// Changes to a tenant's limits and upload quotas: each `Some` replaces, `Some(None)` clears
/// (the host's default applies again), `None` keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitChanges {
    pub max_concurrent: Option<Option<i64>>,
    pub memory_limit_bytes: Option<Option<i64>>,
    pub fuel_budget: Option<Option<i64>>,
    pub max_jobs: Option<Option<i64>>,
    pub max_versions: Option<Option<i64>>,
    pub max_bytes: Option<Option<i64>>,
}

/// Changes a tenant's limits; the tenant as it is now.
pub async fn set_limits(
    db: &Database,
    id: &str,
    changes: &LimitChanges,
) -> Result<Tenant, TenantError> {
    let Some(mut t) = tenant(db, id).await? else {
        return Err(TenantError::Unknown(id.to_string()));
    };
    let apply = |limit: &mut Option<i64>, change: Option<Option<i64>>| {
        if let Some(value) = change {
            *limit = value;
        }
    };
    apply(&mut t.max_concurrent, changes.max_concurrent);
    apply(&mut t.memory_limit_bytes, changes.memory_limit_bytes);
    apply(&mut t.fuel_budget, changes.fuel_budget);
    apply(&mut t.max_jobs, changes.max_jobs);
    apply(&mut t.max_versions, changes.max_versions);
    apply(&mut t.max_bytes, changes.max_bytes);
    execute(
        db,
        &stmt(
            "UPDATE tenants SET max_concurrent = ?, memory_limit_bytes = ?, fuel_budget = ?, \
             max_jobs = ?, max_versions = ?, max_bytes = ? WHERE id = ?",
            vec![
                opt_int(t.max_concurrent),
                opt_int(t.memory_limit_bytes),
                opt_int(t.fuel_budget),
                opt_int(t.max_jobs),
                opt_int(t.max_versions),
                opt_int(t.max_bytes),
                Param::Text(id.into()),
            ],
        ),
    )
    .await?;
    Ok(t)
}

/// The columns of a [`Tenant`].
const COLUMNS: &str =
    "id, name, max_concurrent, memory_limit_bytes, fuel_budget, max_jobs, max_versions, max_bytes";

pub async fn tenant(db: &Database, id: &str) -> Result<Option<Tenant>, sqlx::Error> {
    Ok(fetch_one(
        db,
        &stmt(
            &format!("SELECT {COLUMNS} FROM tenants WHERE id = ?"),
            vec![Param::Text(id.into())],
        ),
    )
    .await?
    .as_ref()
    .map(tenant_of))
}

pub async fn tenants(db: &Database) -> Result<Vec<Tenant>, sqlx::Error> {
    Ok(fetch_all(
        db,
        &stmt(
            &format!("SELECT {COLUMNS} FROM tenants ORDER BY name"),
            vec![],
        ),
    )
    .await?
    .iter()
    .map(tenant_of)
    .collect())
}

/// Makes a token for a tenant (`None` with `admin`: an admin token); returns the token, which
/// is not stored and cannot be shown again.
pub async fn create_token(
    db: &Database,
    tenant: Option<&str>,
    admin: bool,
    name: &str,
) -> Result<String, TenantError> {
    if let Some(t) = tenant {
        if self::tenant(db, t).await?.is_none() {
            return Err(TenantError::Unknown(t.to_string()));
        }
    }
    let token = new_token();
    insert_token(db, tenant, admin, name, &token_hash(&token)).await?;
    Ok(token)
}

async fn insert_token(
    db: &Database,
    tenant: Option<&str>,
    admin: bool,
    name: &str,
    hash: &str,
) -> Result<(), sqlx::Error> {
    execute(
        db,
        &stmt(
            "INSERT INTO tokens (id, tenant_id, name, token_hash, is_admin, created_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (token_hash) DO NOTHING",
            vec![
                Param::Text(Uuid::new_v4().to_string()),
                tenant.map_or(Param::Null(FieldType::String), |t| Param::Text(t.into())),
                Param::Text(name.into()),
                Param::Text(hash.into()),
                Param::Bool(admin),
                Param::DateTime(Utc::now()),
            ],
        ),
    )
    .await?;
    Ok(())
}

/// The admin token at start-up: with `configured` (from `CODEAI_ADMIN_TOKEN`) nothing is done;
/// with none, a token is generated and returned when no admin token exists yet (to be printed
/// once). `Ok(None)`: the configured token, or an admin token made earlier, is in force.
pub async fn ensure_admin_token(
    db: &Database,
    configured: Option<&str>,
) -> Result<Option<String>, sqlx::Error> {
    if configured.is_some() {
        // Checked in memory by every process that has it; never stored, so changing the
        // variable revokes the old one.
        return Ok(None);
    }
    let existing = fetch_one(
        db,
        &stmt(
            "SELECT id FROM tokens WHERE is_admin = ? LIMIT 1",
            vec![Param::Bool(true)],
        ),
    )
    .await?;
    if existing.is_some() {
        return Ok(None);
    }
    let token = new_token();
    insert_token(
        db,
        None,
        true,
        "generated at first start",
        &token_hash(&token),
    )
    .await?;
    Ok(Some(token))
}

/// Whom a bearer token speaks for; `None` if it is unknown.
pub async fn principal(db: &Database, token: &str) -> Result<Option<Principal>, sqlx::Error> {
    let row = fetch_one(
        db,
        &stmt(
            "SELECT tenant_id, is_admin FROM tokens WHERE token_hash = ?",
            vec![Param::Text(token_hash(token))],
        ),
    )
    .await?;
    Ok(row.map(|r| {
        if r.flag("is_admin") {
            Principal::Admin
        } else {
            Principal::Tenant(r.text("tenant_id").unwrap_or_default())
        }
    }))
}
