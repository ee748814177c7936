//! Upload quotas per tenant, and the pruning they imply.
//!
//! An upload costs the host twice: the component in `job_versions` and its compiled artifact in
//! the cache directory (a few times the component's size), both kept for every version. Without
//! a limit a tenant uploading in a loop fills the database and the disk. So each tenant has three
//! quotas:
//!
//! - `max_jobs` (host default 100, `CODEAI_TENANT_MAX_JOBS`): an upload of a new job beyond it
//!   is refused.
//! - `max_versions` (host default 10, `CODEAI_TENANT_MAX_VERSIONS`): the versions of a job kept.
//!   A new version prunes the oldest beyond it that nothing uses any more (not the current one,
//!   not one a pending or active task will run), and their compiled components (artifact and
//!   `InstancePre`) unless another stored version, of any job or tenant, has the same bytes.
//!   Executions keep the version number they ran; its component is gone.
//! - `max_bytes` (host default 256 MiB, `CODEAI_TENANT_MAX_BYTES`): the bytes of the components
//!   it stores, every version of every job. An upload that would store more (after the pruning
//!   it causes) is refused.
//!
//! A tenant's own settings (`codeai tenant create|set NAME --max-jobs …`) replace the host's
//! defaults. The operator (the default tenant) is trusted: it has no quota unless its own
//! settings give one. Deleting a job frees its versions and their compiled components.

use crate::executor::Executor;
use crate::queue::Queue;
use crate::runtime::cache;
use crate::store::quotas::{self as stored, StoredVersion};
use crate::store::tenants::{self, Tenant};
use crate::store::Database;
use crate::worker::WorkerPool;
use std::collections::BTreeSet;

/// A tenant's upload quotas; `None`: no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    pub max_jobs: Option<u64>,
    pub max_versions: Option<u64>,
    pub max_bytes: Option<u64>,
}

impl Default for Quotas {
    /// The host's defaults: 100 jobs, 10 versions kept per job, 256 MiB of components.
    fn default() -> Quotas {
        Quotas {
            max_jobs: Some(100),
            max_versions: Some(10),
            max_bytes: Some(256 << 20),
        }
    }
}

impl Quotas {
    /// No limit at all.
    pub fn unlimited() -> Quotas {
        Quotas {
            max_jobs: None,
            max_versions: None,
            max_bytes: None,
        }
    }

    /// The host's defaults from `CODEAI_TENANT_MAX_JOBS`, `CODEAI_TENANT_MAX_VERSIONS` and
    /// `CODEAI_TENANT_MAX_BYTES` (positive numbers), each [`Quotas::default`]'s when unset.
    pub fn from_env() -> Result<Quotas, String> {
        let defaults = Quotas::default();
        let number = |name: &str, default: Option<u64>| -> Result<Option<u64>, String> {
            Ok(crate::envvar::positive(name)?.or(default))
        };
        Ok(Quotas {
            max_jobs: number("CODEAI_TENANT_MAX_JOBS", defaults.max_jobs)?,
            max_versions: number("CODEAI_TENANT_MAX_VERSIONS", defaults.max_versions)?,
            max_bytes: number("CODEAI_TENANT_MAX_BYTES", defaults.max_bytes)?,
        })
    }

    /// The quotas of `tenant` when these are the host's defaults: its own settings, else these;
    /// the operator's own settings only.
    pub fn of(&self, tenant: &Tenant) -> Quotas {
        let own = |v: Option<i64>| v.map(|n| u64::try_from(n).unwrap_or(0));
        let host = if tenants::is_operator(&tenant.id) {
            Quotas::unlimited()
        } else {
            *self
        };
        Quotas {
            max_jobs: own(tenant.max_jobs).or(host.max_jobs),
            max_versions: own(tenant.max_versions).or(host.max_versions),
            max_bytes: own(tenant.max_bytes).or(host.max_bytes),
        }
    }

    /// The quotas of the tenant `id` (the host's defaults when it has no row).
    pub async fn of_tenant(&self, db: &Database, id: &str) -> Result<Quotas, sqlx::Error> {
        Ok(match tenants::tenant(db, id).await? {
            Some(t) => self.of(&t),
            None => *self,
        })
    }
}

/// The quota an upload would go beyond, with the usage and the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Exceeded {
    #[error(
        "job quota exceeded: tenant `{tenant}` has {jobs} jobs and may have {limit} (max_jobs); \
         delete a job (`DELETE /jobs/{{id}}`) to upload a new one, or ask the operator to raise \
         the limit"
    )]
    Jobs {
        tenant: String,
        jobs: u64,
        limit: u64,
    },
    #[error(
        "storage quota exceeded: tenant `{tenant}` stores {stored} bytes of components and \
         compiled code and may \
         store {limit} (max_bytes); with this upload of {adding} bytes it would store {after}. \
         Delete a job (`DELETE /jobs/{{id}}`) to free its versions, or ask the operator to raise \
         the limit"
    )]
    Bytes {
        tenant: String,
        stored: u64,
        adding: u64,
        after: u64,
        limit: u64,
    },
}

/// Why an upload may not be stored: a quota, or the store or the queue failing.
#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error(transparent)]
    Exceeded(#[from] Exceeded),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl From<sqlx::Error> for QuotaError {
    fn from(e: sqlx::Error) -> QuotaError {
        QuotaError::Failed(e.into())
    }
}

/// Of `versions` (newest first), those to prune when the newest `keep` are kept: neither the
/// `current` one nor one in use.
fn prunable<'a>(
    versions: &'a [StoredVersion],
    keep: usize,
    current: Option<i64>,
    in_use: &'a BTreeSet<i64>,
) -> impl Iterator<Item = &'a StoredVersion> + 'a {
    versions
        .iter()
        .skip(keep)
        .filter(move |v| Some(v.version) != current && !in_use.contains(&v.version))
}

/// The versions a job keeps under `quotas` (at least one: the current).
fn kept(quotas: &Quotas) -> Option<usize> {
    quotas
        .max_versions
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX).max(1))
}

/// Checks, before anything is compiled or stored, that `tenant` may store `component` as its
/// job `name` under `quotas`: a new job within `max_jobs`, and its stored bytes within
/// `max_bytes` once the versions this upload prunes are gone. The same component as the job's
/// latest version stores nothing and passes. `artifact` is the size of its compiled artifact,
/// which counts too: 0 before compiling, the real size once compiled (checked again then).
pub async fn check_upload(
    db: &Database,
    queue: &Queue,
    quotas: &Quotas,
    tenant: &str,
    name: &str,
    component: &[u8],
    artifact: u64,
) -> Result<(), QuotaError> {
    if quotas.max_jobs.is_none() && quotas.max_bytes.is_none() {
        return Ok(());
    }
    let usage = stored::usage(db, tenant).await?;
    let mut freed = 0;
    match stored::job_id(db, tenant, name).await? {
        None => {
            if let Some(limit) = quotas.max_jobs.filter(|limit| usage.jobs >= *limit) {
                return Err(Exceeded::Jobs {
                    tenant: tenant.to_string(),
                    jobs: usage.jobs,
                    limit,
                }
                .into());
            }
        }
        Some(job_id) => {
            let versions = stored::versions(db, &job_id).await?;
            let hash = cache::hex(&cache::sha256(component));
            if versions.first().is_some_and(|v| v.sha256 == hash) {
                return Ok(());
            }
            if let Some(keep) = kept(quotas) {
                // The new version takes one of the places kept, and becomes the current one.
                let in_use = queue.versions_in_use(&job_id).await?;
                freed = prunable(&versions, keep - 1, None, &in_use)
                    .map(|v| v.size)
                    .sum();
            }
        }
    }
    let adding = component.len() as u64 + artifact;
    let after = usage.bytes.saturating_sub(freed).saturating_add(adding);
    match quotas.max_bytes {
        Some(limit) if after > limit => Err(Exceeded::Bytes {
            tenant: tenant.to_string(),
            stored: usage.bytes,
            adding,
            after,
            limit,
        }
        .into()),
        _ => Ok(()),
    }
}

/// What holds a job's versions: the store, the queue (the versions pending and active tasks
/// will run), the runtime's compiled components and the worker pool's.
#[derive(Clone, Copy)]
pub struct JobStorage<'a> {
    pub db: &'a Database,
    pub queue: &'a Queue,
    pub executor: &'a Executor,
    pub pool: &'a WorkerPool,
}

impl JobStorage<'_> {
    /// Prunes the versions of `job_id` beyond the newest `quotas.max_versions` that nothing
    /// uses (not the current one, not one a pending or active task will run), with their
    /// compiled components unless another stored version has the same bytes. Returns the
    /// versions pruned, oldest first.
    pub async fn prune(&self, job_id: &str, quotas: &Quotas) -> anyhow::Result<Vec<i64>> {
        let Some(keep) = kept(quotas) else {
            return Ok(Vec::new());
        };
        let versions = stored::versions(self.db, job_id).await?;
        if versions.len() <= keep {
            return Ok(Vec::new());
        }
        let current = stored::current_version(self.db, job_id).await?;
        let in_use = self.queue.versions_in_use(job_id).await?;
        let gone: Vec<StoredVersion> = prunable(&versions, keep, current, &in_use)
            .cloned()
            .collect();
        let numbers: Vec<i64> = gone.iter().rev().map(|v| v.version).collect();
        stored::delete_versions(self.db, job_id, &numbers).await?;
        self.forget(job_id, &gone).await?;
        Ok(numbers)
    }

    /// Forgets versions of `job_id` whose rows are gone (pruned, or the job deleted): the
    /// worker pool's components, and each compiled component no stored version still has.
    pub async fn forget(&self, job_id: &str, gone: &[StoredVersion]) -> anyhow::Result<()> {
        let numbers: Vec<i64> = gone.iter().map(|v| v.version).collect();
        self.pool.forget_versions(job_id, &numbers);
        let mut hashes: Vec<String> = gone.iter().map(|v| v.sha256.clone()).collect();
        hashes.sort();
        hashes.dedup();
        self.forget_unstored(&hashes).await
    }

    /// Forgets the compiled components of `hashes` (hex SHA-256) that no stored version of any
    /// job or tenant has: the `InstancePre` in memory and the artifact on disk.
    pub async fn forget_unstored(&self, hashes: &[String]) -> anyhow::Result<()> {
        let stored = stored::stored_hashes(self.db, hashes).await?;
        for hash in hashes.iter().filter(|h| !stored.contains(*h)) {
            if let Some(digest) = cache::from_hex(hash) {
                self.executor.runtime().forget(&digest)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(version: i64) -> StoredVersion {
        StoredVersion {
            version,
            sha256: format!("{version:064}"),
            size: 10,
        }
    }

    fn check(versions: &[i64], keep: usize, current: Option<i64>, in_use: &[i64], want: &[i64]) {
        let versions: Vec<StoredVersion> = versions.iter().map(|n| v(*n)).collect();
        let in_use: BTreeSet<i64> = in_use.iter().copied().collect();
        let got: Vec<i64> = prunable(&versions, keep, current, &in_use)
            .map(|v| v.version)
            .collect();
        assert_eq!(
            got, want,
            "keep {keep}, current {current:?}, in use {in_use:?}"
        );
    }

    #[test]
    fn the_oldest_versions_beyond_those_kept_are_pruned_unless_used() {
        check(&[5, 4, 3, 2, 1], 10, Some(5), &[], &[]);
        check(&[5, 4, 3, 2, 1], 3, Some(5), &[], &[2, 1]);
        check(&[5, 4, 3, 2, 1], 3, Some(5), &[1], &[2]);
        check(&[5, 4, 3, 2, 1], 1, Some(5), &[3], &[4, 2, 1]);
        // A current version that is not the newest (never made today) is kept all the same.
        check(&[5, 4, 3, 2, 1], 1, Some(2), &[], &[4, 3, 1]);
        // Before an upload: the new version takes a place and becomes the current one.
        check(&[5, 4, 3], 0, None, &[4], &[5, 3]);
    }

    fn tenant(id: &str, max_jobs: Option<i64>) -> Tenant {
        Tenant {
            id: id.into(),
            name: id.into(),
            max_concurrent: None,
            memory_limit_bytes: None,
            fuel_budget: None,
            max_jobs,
            max_versions: None,
            max_bytes: None,
        }
    }

    #[test]
    fn a_tenant_s_own_quota_replaces_the_host_s_and_the_operator_has_only_its_own() {
        let host = Quotas::default();
        assert_eq!(host.of(&tenant("acme", None)), host);
        assert_eq!(host.of(&tenant("acme", Some(3))).max_jobs, Some(3));
        assert_eq!(host.of(&tenant("default", None)), Quotas::unlimited());
        let operator = host.of(&tenant("default", Some(500)));
        assert_eq!(
            (operator.max_jobs, operator.max_versions, operator.max_bytes),
            (Some(500), None, None)
        );
    }
}
