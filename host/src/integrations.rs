//! Warnings for integrations that cannot be called: a base URL or a credential read with
//! `env("…")` that is not set for the job's tenant (a secret of the tenant; for the operator's
//! jobs also the host's environment, minus the platform's own variables).
//!
//! Without them a job whose integration is not configured fails at its first call with nothing in
//! the host's log. Each is warned once per process at start ([`warn_unset`], for the jobs the
//! process loaded) and once more at the first call that needs the variable ([`unset_at_use`]).
//! A warning names the tenant, the job, the integration and the variable, never a value.

use crate::caps::env::denied;
use crate::services::ServicesConfig;
use crate::store::{secrets, tenants, Database};
use codeai_ir::{Auth, IntegrationDecl, Manifest, ValueSource};
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

/// What of an integration a variable holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    BaseUrl,
    Credential,
}

impl Part {
    fn as_str(self) -> &'static str {
        match self {
            Part::BaseUrl => "base URL",
            Part::Credential => "credential",
        }
    }
}

/// The variables an integration reads with `env("…")`: what each holds and its name.
pub fn env_variables(integration: &IntegrationDecl) -> Vec<(Part, &str)> {
    let mut out = Vec::new();
    if let ValueSource::Env(name) = &integration.base_url {
        out.push((Part::BaseUrl, name.as_str()));
    }
    let credentials: Vec<&ValueSource> = match &integration.auth {
        Auth::None => vec![],
        Auth::Bearer { token } => vec![token],
        Auth::Header { value, .. } => vec![value],
        Auth::Basic { user, password } => vec![user, password],
    };
    for source in credentials {
        if let ValueSource::Env(name) = source {
            out.push((Part::Credential, name.as_str()));
        }
    }
    out
}

/// The variables of `manifest`'s integrations that `tenant`'s executions would not find:
/// `(integration, part, variable)`. `secrets` are the names of the tenant's secrets.
pub fn unset<'m>(
    manifest: &'m Manifest,
    tenant: &str,
    secrets: &HashSet<String>,
    config: &ServicesConfig,
) -> Vec<(&'m str, Part, &'m str)> {
    let operator = tenants::is_operator(tenant);
    let mut out = Vec::new();
    for integration in &manifest.integrations {
        for (part, name) in env_variables(integration) {
            let found = secrets.contains(name)
                || (operator && !denied(name, &config.env_deny) && (config.env)(name).is_some());
            if !found {
                out.push((integration.name.as_str(), part, name));
            }
        }
    }
    out
}

/// A warning given: `(when, tenant, integration, variable)`.
type Warning = (&'static str, String, String, String);

/// Warned already in this process.
fn warned() -> &'static Mutex<HashSet<Warning>> {
    static WARNED: OnceLock<Mutex<HashSet<Warning>>> = OnceLock::new();
    WARNED.get_or_init(Default::default)
}

/// Whether this is the first warning of its kind in this process.
fn first(when: &'static str, tenant: &str, integration: &str, variable: &str) -> bool {
    warned().lock().unwrap_or_else(|e| e.into_inner()).insert((
        when,
        tenant.to_string(),
        integration.to_string(),
        variable.to_string(),
    ))
}

/// How an operator sets `variable` for `tenant`.
fn how_to_set(tenant: &str, variable: &str) -> String {
    if tenants::is_operator(tenant) {
        format!("set it in the host's environment or with `codeai secret set {variable}`")
    } else {
        format!("set it with `codeai secret set --tenant {tenant} {variable}`")
    }
}

/// Warns once per process for each variable of `jobs` (`(tenant, manifest)`) that is unset for
/// its tenant; the jobs' calls to that integration fail until it is set.
pub async fn warn_unset<'a>(
    db: &Database,
    config: &ServicesConfig,
    jobs: impl IntoIterator<Item = (&'a str, &'a Manifest)>,
) {
    let mut names: std::collections::HashMap<String, HashSet<String>> = Default::default();
    for (tenant, manifest) in jobs {
        if manifest.integrations.is_empty() {
            continue;
        }
        if !names.contains_key(tenant) {
            let found = match secrets::list(db, tenant).await {
                Ok(list) => list.into_iter().map(|s| s.name).collect(),
                Err(e) => {
                    tracing::warn!(tenant, "reading the names of the tenant's secrets: {e}");
                    HashSet::new()
                }
            };
            names.insert(tenant.to_string(), found);
        }
        for (integration, part, variable) in unset(manifest, tenant, &names[tenant], config) {
            if first("start", tenant, integration, variable) {
                tracing::warn!(
                    tenant,
                    job = %manifest.name,
                    integration,
                    variable,
                    "integration `{integration}`: its {} `{variable}` is not set; its calls \
                     will fail until it is ({})",
                    part.as_str(),
                    how_to_set(tenant, variable)
                );
            }
        }
    }
}

/// Warns at the first call of this process that needed `variable` of `integration` and did not
/// find it (later misses are in the executions' errors only).
pub fn unset_at_use(tenant: &str, job: &str, integration: &str, variable: &str) {
    if first("use", tenant, integration, variable) {
        tracing::warn!(
            tenant,
            job,
            integration,
            variable,
            "integration `{integration}` was called but `{variable}` is not set for its \
             tenant; the call failed ({})",
            how_to_set(tenant, variable)
        );
    }
}
