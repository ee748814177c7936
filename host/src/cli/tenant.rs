//! `codeai tenant create|list` and `codeai token create`: the tenants of a deployment and their
//! API tokens. A token is printed once and stored only as its SHA-256.

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
    },
    /// List the tenants and their limits.
    List,
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
            } => {
                let memory = positive("memory-mib", *memory_mib)?.map(|m| m << 20);
                let t = tenants::create_tenant(
                    &db,
                    name,
                    positive("max-concurrent", *max_concurrent)?,
                    memory,
                    positive("fuel", *fuel)?,
                )
                .await?;
                println!("tenant {} created", t.name);
                println!(
                    "make a token for it: codeai token create --tenant {}",
                    t.name
                );
            }
            TenantAction::List => {
                use super::format::{Align, Table};
                let mut table = Table::new(&[
                    ("TENANT", Align::Left),
                    ("MAX CONCURRENT", Align::Right),
                    ("MEMORY (MiB)", Align::Right),
                    ("FUEL", Align::Right),
                ]);
                let dash = |v: Option<i64>| v.map_or("-".to_string(), |n| n.to_string());
                for t in tenants::tenants(&db).await? {
                    table.row(vec![
                        t.name,
                        dash(t.max_concurrent),
                        dash(t.memory_limit_bytes.map(|b| b >> 20)),
                        dash(t.fuel_budget),
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
