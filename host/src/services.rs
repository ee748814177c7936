//! The process's shared services: what every execution, worker and alert loop of one process
//! uses and nothing owns alone — the platform's database and its execution recorder, the HTTP
//! clients of integration calls (one under the operator's egress allow list, one under the
//! tenants'), the Slack webhook client, and how the process reaches the outside world
//! ([`ServicesConfig`]: the report store, SMTP, Slack, the host's environment, the secret keys,
//! the egress policy).
//!
//! A capability ([`crate::caps::JobCaps`]) serves one execution and borrows these; the services
//! implement no interface of the `job` world themselves.

use crate::egress::{EgressConfig, Outbound};
use crate::notify::{self, SlackConfig, SmtpConfig};
use crate::store::namespace::{Namespace, SchemaCache};
use crate::store::recorder::Recorder;
use crate::store::secrets::Keyring;
use crate::store::Database;
use std::path::PathBuf;
use std::sync::Arc;

/// How the process reaches the outside world; [`ServicesConfig::from_env`] reads it.
#[derive(Clone)]
pub struct ServicesConfig {
    /// Where rendered reports are kept (`CODEAI_REPORT_DIR`, default `.codeai/reports`).
    pub report_dir: PathBuf,
    /// How long a report is kept before `expires_at` (`CODEAI_REPORT_TTL_DAYS`, default 30).
    pub report_ttl: chrono::Duration,
    /// `SMTP_HOST` and friends; `None` holds mail in the outbox.
    pub smtp: Option<SmtpConfig>,
    /// `SLACK_WEBHOOK`; `None` holds Slack messages in the outbox.
    pub slack: Option<SlackConfig>,
    /// The host's environment: where the operator's jobs read `env("…")` values that are not
    /// secrets of the operator (tenants' jobs never do).
    pub env: Env,
    /// `CODEAI_ENV_DENY`: names (`PREFIX*` allowed) the operator's jobs may not read from `env`,
    /// besides the platform's own variables ([`crate::caps::env::PLATFORM_VARIABLES`]).
    pub env_deny: Vec<String>,
    /// The keys tenants' secrets are encrypted with (`CODEAI_SECRET_KEY`, …).
    pub secret_keys: Arc<Keyring>,
    /// Where jobs' HTTP may go (`CODEAI_EGRESS_ALLOW`, `CODEAI_OPERATOR_EGRESS_ALLOW`).
    pub egress: EgressConfig,
    /// The most bytes of execution records waiting for their commit in this process, one
    /// tenant's at most half ([`crate::store::recorder::HELD_BYTES`]).
    pub held_record_bytes: usize,
}

impl std::fmt::Debug for ServicesConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServicesConfig")
            .field("report_dir", &self.report_dir)
            .field("report_ttl", &self.report_ttl)
            .field("smtp", &self.smtp.as_ref().map(|s| (&s.host, s.port)))
            .field("slack", &self.slack.is_some())
            .field("env_deny", &self.env_deny)
            .field("secret_keys", &self.secret_keys)
            .field("egress", &self.egress)
            .field("held_record_bytes", &self.held_record_bytes)
            .finish()
    }
}

impl ServicesConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<ServicesConfig, String> {
        let ttl_days = match std::env::var("CODEAI_REPORT_TTL_DAYS") {
            Ok(v) if !v.is_empty() => {
                v.parse::<i64>().ok().filter(|d| *d > 0).ok_or_else(|| {
                    format!("CODEAI_REPORT_TTL_DAYS=`{v}` is not a positive number")
                })?
            }
            _ => 30,
        };
        Ok(ServicesConfig {
            report_dir: std::env::var_os("CODEAI_REPORT_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(".codeai/reports")),
            report_ttl: chrono::Duration::days(ttl_days),
            smtp: SmtpConfig::from_env()?,
            slack: SlackConfig::from_env(),
            env: process_env(),
            env_deny: parse_deny_list(&std::env::var("CODEAI_ENV_DENY").unwrap_or_default()),
            secret_keys: Arc::new(Keyring::from_env()?),
            egress: EgressConfig::from_env()?,
            held_record_bytes: crate::store::recorder::HELD_BYTES,
        })
    }

    /// No mail server, no Slack, reports under `report_dir`, the host's environment `env`,
    /// secrets under a key that lives as long as this configuration, and HTTP to public
    /// addresses only (tests that call a peer on loopback allow it in `egress`).
    pub fn local(report_dir: impl Into<PathBuf>, env: Env) -> ServicesConfig {
        ServicesConfig {
            report_dir: report_dir.into(),
            report_ttl: chrono::Duration::days(30),
            smtp: None,
            slack: None,
            env,
            env_deny: Vec::new(),
            secret_keys: Arc::new(Keyring::ephemeral()),
            egress: EgressConfig::default(),
            held_record_bytes: crate::store::recorder::HELD_BYTES,
        }
    }
}

/// What the executions, workers and alerts of this process share.
pub struct Services {
    db: Database,
    /// The platform's PostgreSQL schema, asked once: tenants' namespaces are named after it.
    schemas: SchemaCache,
    recorder: Recorder,
    config: ServicesConfig,
    /// Integration calls of the operator's jobs, under the operator's allow list.
    operator_http: Outbound,
    /// Integration calls of tenants' jobs, under the tenants' allow list.
    tenant_http: Outbound,
    webhooks: reqwest::Client,
}

impl Services {
    pub fn new(db: Database, config: ServicesConfig) -> Arc<Services> {
        Arc::new(Services {
            recorder: Recorder::holding(db.own_pool(2), config.held_record_bytes),
            schemas: Default::default(),
            db,
            operator_http: Outbound::new(config.egress.policy(true)),
            tenant_http: Outbound::new(config.egress.policy(false)),
            config,
            webhooks: notify::http_client(),
        })
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    pub fn config(&self) -> &ServicesConfig {
        &self.config
    }

    /// Writes execution records with group commit.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// The HTTP client for Slack webhooks.
    pub fn webhooks(&self) -> &reqwest::Client {
        &self.webhooks
    }

    /// Where `tenant`'s entity tables are, with the platform schema asked once per process.
    pub fn namespace(&self, tenant: &str) -> Namespace {
        Namespace::with_cache(&self.db, tenant, &self.schemas)
    }

    /// The HTTP client of `tenant`'s jobs: the operator's under the operator's allow list,
    /// every other tenant's under the tenants' list.
    pub fn outbound(&self, tenant: &str) -> &Outbound {
        if crate::store::tenants::is_operator(tenant) {
            &self.operator_http
        } else {
            &self.tenant_http
        }
    }
}

/// Reads the host's environment. Tests pass a map instead of the process environment.
pub type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The process environment as an [`Env`].
pub fn process_env() -> Env {
    Arc::new(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

/// `CODEAI_ENV_DENY`: comma-separated names, `PREFIX*` allowed.
pub fn parse_deny_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}
