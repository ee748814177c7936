//! `codeai tenant create|set|list` and `codeai token create`: the tenants of a deployment, their
//! limits and quotas, and their API tokens. A token is printed once and stored only as its
//! SHA-256.

use super::exec::open_database;
use crate::store::tenants;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(super) struct TenantArgs {
    #[command(subcommand)]
    action: TenantAction,
}

#[derive(Debug, clap::Subcommand)]
enum TenantAction {
    /// Create a tenant, optionally with limits.
    Create {
        /// a-z, 0-9, `-` and `_`, at most 64 characters.
        name: String,
        /// Executions of this tenant running at once.
        #[arg(long)]
        max_concurrent: Option<i64>,
        /// The memory cap of each execution, in MiB (at most the host's).
        #[arg(long)]
        memory_mib: Option<i64>,
        /// The fuel budget of each execution.
        #[arg(long)]
        fuel: Option<i64>,
        #[command(flatten)]
        quotas: QuotaArgs,
    },
    /// Change a tenant's limits and quotas: a number, or `default` for the host's.
    Set {
        name: String,
        /// Executions of this tenant running at once.
        #[arg(long, value_parser = setting)]
        max_concurrent: Option<Setting>,
        /// The memory cap of each execution, in MiB (at most the host's).
        #[arg(long, value_parser = setting)]
        memory_mib: Option<Setting>,
        /// The fuel budget of each execution.
        #[arg(long, value_parser = setting)]
        fuel: Option<Setting>,
        /// Jobs it may have (host default: CODEAI_TENANT_MAX_JOBS, 100).
        #[arg(long, value_parser = setting)]
        max_jobs: Option<Setting>,
        /// Versions of each job kept; older unused ones are pruned (host default:
        /// CODEAI_TENANT_MAX_VERSIONS, 10).
        #[arg(long, value_parser = setting)]
        max_versions: Option<Setting>,
        /// Bytes of components it may store, every version of every job (host default:
        /// CODEAI_TENANT_MAX_BYTES, 268435456).
        #[arg(long, value_parser = setting)]
        max_bytes: Option<Setting>,
    },
    /// List the tenants and their limits.
    List,
}

/// Upload quotas; unset: the host's defaults (the default tenant, the operator's: no limit).
#[derive(Debug, clap::Args)]
struct QuotaArgs {
    /// Jobs it may have (host default: CODEAI_TENANT_MAX_JOBS, 100).
    #[arg(long)]
    max_jobs: Option<i64>,
    /// Versions of each job kept; older unused ones are pruned (host default:
    /// CODEAI_TENANT_MAX_VERSIONS, 10).
    #[arg(long)]
    max_versions: Option<i64>,
    /// Bytes of components it may store, every version of every job (host default:
    /// CODEAI_TENANT_MAX_BYTES, 268435456).
    #[arg(long)]
    max_bytes: Option<i64>,
}

/// A limit to set: a positive number, or `None` for the host's default.
#[derive(Debug, Clone, Copy)]
struct Setting(Option<i64>);

fn setting(text: &str) -> Result<Setting, String> {
    if text == "default" {
        return Ok(Setting(None));
    }
    match text.parse::<i64>() {
        Ok(n) if n > 0 => Ok(Setting(Some(n))),
        _ => Err(format!(
            "expected a positive number or `default`, got `{text}`"
        )),
    }
}

#[derive(Debug, clap::Args)]
pub(super) struct TokenArgs {
    #[command(subcommand)]
    action: TokenAction,
}

#[derive(Debug, clap::Subcommand)]
enum TokenAction {
    /// Make an API token for a tenant (or an admin token) and print it once.
    Create {
        /// The tenant the token speaks for.
        #[arg(long, required_unless_present = "admin", conflicts_with = "admin")]
        tenant: Option<String>,
        /// An admin token: sees and changes every tenant's objects.
        #[arg(long)]
        admin: bool,
        /// A label to recognise the token by.
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

fn positive(what: &str, v: Option<i64>) -> anyhow::Result<Option<i64>> {
    match v {
        Some(n) if n <= 0 => anyhow::bail!("--{what} must be positive (got {n})"),
        other => Ok(other),
    }
}

pub(super) fn run_tenant(args: &TenantArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let db = open_database().await?;
        match &args.action {
            TenantAction::Create {
                name,
                max_concurrent,
                memory_mib,
                fuel,
                quotas,
            } => {
                let memory = positive("memory-mib", *memory_mib)?.map(|m| m << 20);
                let (max_jobs, max_versions, max_bytes) = (
                    positive("max-jobs", quotas.max_jobs)?,
                    positive("max-versions", quotas.max_versions)?,
                    positive("max-bytes", quotas.max_bytes)?,
                );
                let t = tenants::create_tenant(
                    &db,
                    name,
                    positive("max-concurrent", *max_concurrent)?,
                    memory,
                    positive("fuel", *fuel)?,
                )
                .await?;
                if max_jobs.is_some() || max_versions.is_some() || max_bytes.is_some() {
                    let quotas = tenants::LimitChanges {
                        max_jobs: max_jobs.map(Some),
                        max_versions: max_versions.map(Some),
                        max_bytes: max_bytes.map(Some),
                        ..Default::default()
                    };
                    tenants::set_limits(&db, &t.id, &quotas).await?;
                }
                println!("tenant {} created", t.name);
                println!(
                    "make a token for it: codeai token create --tenant {}",
                    t.name
                );
            }
            TenantAction::Set {
                name,
                max_concurrent,
                memory_mib,
                fuel,
                max_jobs,
                max_versions,
                max_bytes,
            } => {
                let value = |s: &Option<Setting>| s.map(|s| s.0);
                let changes = tenants::LimitChanges {
                    max_concurrent: value(max_concurrent),
                    memory_limit_bytes: value(memory_mib).map(|m| m.map(|m| m << 20)),
                    fuel_budget: value(fuel),
                    max_jobs: value(max_jobs),
                    max_versions: value(max_versions),
                    max_bytes: value(max_bytes),
                };
                tenants::set_limits(&db, name, &changes).await?;
                println!("tenant {name} changed (running hosts apply it within seconds)");
            }
            TenantAction::List => {
                use super::format::{Align, Table};
                let mut table = Table::new(&[
                    ("TENANT", Align::Left),
                    ("MAX CONCURRENT", Align::Right),
                    ("MEMORY (MiB)", Align::Right),
                    ("FUEL", Align::Right),
                    ("MAX JOBS", Align::Right),
                    ("VERSIONS KEPT", Align::Right),
                    ("MAX BYTES", Align::Right),
                ]);
                let dash = |v: Option<i64>| v.map_or("-".to_string(), |n| n.to_string());
                for t in tenants::tenants(&db).await? {
                    table.row(vec![
                        t.name,
                        dash(t.max_concurrent),
                        dash(t.memory_limit_bytes.map(|b| b >> 20)),
                        dash(t.fuel_budget),
                        dash(t.max_jobs),
                        dash(t.max_versions),
                        dash(t.max_bytes),
                    ]);
                }
                print!("{}", table.render());
            }
        }
        db.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

pub(super) fn run_token(args: &TokenArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let db = open_database().await?;
        let TokenAction::Create {
            tenant,
            admin,
            name,
        } = &args.action;
        let token = tenants::create_token(&db, tenant.as_deref(), *admin, name).await?;
        println!("{token}");
        eprintln!(
            "this {} token is shown once; it is stored only as its hash",
            match tenant {
                Some(t) => format!("tenant `{t}`"),
                None => "admin".to_string(),
            }
        );
        db.close().await;
        Ok(ExitCode::SUCCESS)
    })
}
