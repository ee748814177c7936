//! `codeai migrate up [FILE.codeai | DIR] [--demo]`: applies the platform's migrations to the
//! configured database, creates the tables the given jobs' entities declare, and optionally loads
//! the example's demo data.

use crate::store::query::EntityQueries;
use crate::store::{self, demo};
use anyhow::Context as _;
use chrono::Utc;
use chrono_tz::Tz;
use codeai_ir::EntityDecl;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(super) struct MigrateArgs {
    #[command(subcommand)]
    pub(super) action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub(super) enum Action {
    /// Apply the platform's migrations and create the entity tables of the given jobs.
    Up(UpArgs),
}

#[derive(Debug, clap::Args)]
pub(super) struct UpArgs {
    /// A `.codeai` file, a compiled `.wasm` job, or a folder of `.wasm` jobs whose entity tables
    /// to create.
    pub(super) jobs: Vec<PathBuf>,
    /// Load the scheduled-jobs example's demo data (products with low stock, expired sessions,
    /// yesterday's orders, pending webhooks), creating its tables if needed.
    #[arg(long)]
    pub(super) demo: bool,
    /// The timezone whose "yesterday" the demo orders are placed in.
    #[arg(long, default_value = "America/New_York")]
    pub(super) demo_timezone: String,
    /// The tenant that owns the demo rows.
    #[arg(long, default_value = store::platform::DEFAULT_TENANT)]
    pub(super) tenant: String,
}

/// The entity declarations of a `.codeai` file, a component, or a folder of components.
pub(super) fn entities_of(path: &Path) -> anyhow::Result<Vec<EntityDecl>> {
    let mut out: Vec<EntityDecl> = Vec::new();
    let mut add = |decls: Vec<EntityDecl>| {
        for d in decls {
            if !out.iter().any(|e| e.table == d.table) {
                out.push(d);
            }
        }
    };
    if path.is_dir() {
        let files = super::wasm_files(path)?;
        for file in files {
            add(component_entities(&file)?);
        }
    } else if path.extension().is_some_and(|x| x == "wasm") {
        add(component_entities(path)?);
    } else {
        let (name, source) = super::read_source(path)?;
        let (file, errors) = codeai_dsl::parse(&source);
        let (jobs, diagnostics) = codeai_dsl::check::check(&file, &source, &name);
        let mut all = errors;
        all.extend(diagnostics);
        let failed: Vec<_> = all
            .into_iter()
            .filter(|d| d.severity == codeai_dsl::diagnostic::Severity::Error)
            .collect();
        if !failed.is_empty() {
            eprint!(
                "{}",
                codeai_dsl::diagnostic::render_all(&name, &source, &failed)
            );
            anyhow::bail!("`{}` has errors", path.display());
        }
        for job in jobs {
            add(job.manifest.entities);
        }
    }
    Ok(out)
}

fn component_entities(path: &Path) -> anyhow::Result<Vec<EntityDecl>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("failed to read `{}`", path.display()))?;
    let manifest = crate::wasm::read_manifest(&bytes)
        .with_context(|| format!("`{}` is not a job component", path.display()))?;
    Ok(manifest.entities)
}

pub(super) fn run(args: &MigrateArgs) -> anyhow::Result<ExitCode> {
    let Action::Up(up) = &args.action;
    let mut entities = Vec::new();
    for path in &up.jobs {
        for d in entities_of(path)? {
            if !entities.iter().any(|e: &EntityDecl| e.table == d.table) {
                entities.push(d);
            }
        }
    }
    let tz: Tz = up
        .demo_timezone
        .parse()
        .map_err(|_| anyhow::anyhow!("`{}` is not an IANA timezone", up.demo_timezone))?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let url = super::exec::database_url();
        let db = store::Database::connect(&url)
            .await
            .with_context(|| format!("failed to open `{}`", super::exec::redact(&url)))?;
        let applied = store::migrate::migrate_up(&db).await.context("migration failed")?;
        for (version, name) in &applied {
            println!("applied migration {version:04} {name}");
        }
        if applied.is_empty() {
            println!(
                "the platform's tables are up to date (version {})",
                store::migrate::latest_version()
            );
        }
        if up.demo {
            for d in demo::example_entities() {
                if !entities.iter().any(|e: &EntityDecl| e.table == d.table) {
                    entities.push(d);
                }
            }
        }
        store::entities::create_entity_tables(&db, &up.tenant, &entities)
            .await
            .context("failed to create the entity tables")?;
        if !entities.is_empty() {
            let tables: Vec<&str> = entities.iter().map(|e| e.table.as_str()).collect();
            println!("entity tables ready: {}", tables.join(", "));
        }
        if up.demo {
            let data = EntityQueries::new(db.clone(), &demo::example_entities(), up.tenant.clone())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let s = demo::seed(&data, Utc::now(), tz)
                .await
                .map_err(|e| anyhow::anyhow!("loading the demo data failed: {e}"))?;
            println!(
                "demo data loaded for tenant `{}`: {} products ({} low on stock), {} sessions ({} expired), \
                 {} orders ({} yesterday, revenue {:.2}; {} in the spec's sample period, 1–12 January \
                 2026), {} webhooks ({} pending)",
                up.tenant,
                s.products,
                s.low_stock_products,
                s.sessions,
                s.expired_sessions,
                s.orders,
                s.yesterday_orders,
                s.yesterday_revenue,
                s.sample_period_orders,
                s.webhooks,
                s.pending_webhooks
            );
        }
        db.close().await;
        Ok(ExitCode::SUCCESS)
    })
}
