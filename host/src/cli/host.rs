//! `codeai host run PATH`: everything on one machine — compiles the jobs if PATH is a `.codeai`
//! file (or takes the `.wasm` components of a folder), applies the migrations, creates the entity
//! tables, registers the jobs (jobs uploaded earlier over the API are loaded too), then runs the
//! scheduler, the worker pool, the lease reaper, the alerts and the HTTP API on `--listen` until
//! SIGINT/SIGTERM, and shuts down gracefully (active executions finish within the grace period;
//! the rest go back on the queue). The admin token is `CODEAI_ADMIN_TOKEN`; when it is unset, one
//! is generated at the first start and printed once.

use super::exec::{database_url, open_database, redact};
use crate::alerts::AlertConfig;
use crate::api::ApiConfig;
use crate::app::{Host, HostConfig, Registered};
use crate::caps::platform::PlatformConfig;
use crate::queue::QueueConfig;
use crate::runtime::RuntimeConfig;
use crate::scheduler::MisfirePolicy;
use crate::store::{self, platform as pstore, tenants};
use crate::worker::PoolConfig;
use anyhow::Context as _;
use chrono::Utc;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub(super) struct HostArgs {
    #[command(subcommand)]
    pub(super) action: HostAction,
}

#[derive(Debug, clap::Subcommand)]
pub(super) enum HostAction {
    /// Compile (if needed), migrate, register the jobs and run scheduler and workers.
    Run(RunArgs),
}

#[derive(Debug, clap::Args)]
pub(super) struct RunArgs {
    /// A `.codeai` file, or a folder of compiled `.wasm` jobs.
    pub(super) path: PathBuf,
    /// Where the HTTP API listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(super) listen: String,
    /// Executions at once.
    #[arg(long, default_value_t = 10)]
    pub(super) workers: usize,
    /// The tenant the jobs are registered for.
    #[arg(long, default_value = pstore::DEFAULT_TENANT)]
    pub(super) tenant: String,
    /// What to do with fires missed while the host was down: `run-once` or `skip`.
    #[arg(long, default_value = "run-once")]
    pub(super) misfire: String,
    /// Serve the heaviest non-empty queue first instead of sharing by weight.
    #[arg(long)]
    pub(super) strict_priority: bool,
    /// Seconds a task's lease lasts without a heartbeat (a crashed host's tasks run again after it).
    #[arg(long, env = "CODEAI_LEASE_SECS", default_value_t = 30)]
    pub(super) lease_secs: u64,
    /// Seconds shutdown waits for active executions.
    #[arg(long, default_value_t = 30)]
    pub(super) grace_secs: u64,
    /// Load the example's demo data into the entity tables first.
    #[arg(long)]
    pub(super) demo: bool,
}

/// The components to register: compiled from a `.codeai` file, or read from a folder.
fn components(path: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("failed to read `{}`", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect();
        files.sort();
        anyhow::ensure!(
            !files.is_empty(),
            "`{}` holds no `.wasm` job",
            path.display()
        );
        return files
            .into_iter()
            .map(|f| {
                let bytes = std::fs::read(&f)
                    .with_context(|| format!("failed to read `{}`", f.display()))?;
                Ok((f.display().to_string(), bytes))
            })
            .collect();
    }
    let (display, source) = super::read_source(path)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| display.clone());
    match codeai_dsl::compile(&file_name, &source) {
        Ok((artifacts, warnings)) => {
            if !warnings.is_empty() {
                eprint!(
                    "{}",
                    codeai_dsl::diagnostic::render_all(&display, &source, &warnings)
                );
            }
            Ok(artifacts
                .into_iter()
                .map(|a| (a.file_name, a.bytes))
                .collect())
        }
        Err(failed) => {
            eprint!(
                "{}",
                codeai_dsl::diagnostic::render_all(&display, &source, &failed.diagnostics)
            );
            anyhow::bail!("{failed}; nothing was started")
        }
    }
}

pub(super) fn run(args: &HostArgs) -> anyhow::Result<ExitCode> {
    let HostAction::Run(args) = &args.action;
    let misfire = match args.misfire.as_str() {
        "run-once" => MisfirePolicy::RunOnce,
        "skip" => MisfirePolicy::Skip,
        other => anyhow::bail!("--misfire `{other}`: expected `run-once` or `skip`"),
    };
    let api_config = ApiConfig::from_env().map_err(anyhow::Error::msg)?;
    let components = components(&args.path)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        // Bind first: a busy port is an error before anything else starts.
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("cannot listen on `{}` (--listen)", args.listen))?;
        let address = listener.local_addr()?;
        let db = open_database().await?;
        let configured = std::env::var("CODEAI_ADMIN_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty());
        let generated = tenants::ensure_admin_token(&db, configured.as_deref()).await?;
        let mut host = Host::new(
            db.clone(),
            HostConfig {
                runtime: RuntimeConfig::default(),
                platform: PlatformConfig::from_env().map_err(anyhow::Error::msg)?,
                queue: QueueConfig {
                    strict: args.strict_priority,
                    lease: Duration::from_secs(args.lease_secs.max(1)),
                    ..QueueConfig::default()
                },
                pool: PoolConfig {
                    slots: args.workers.max(1),
                    grace: Duration::from_secs(args.grace_secs),
                    heartbeat: Duration::from_secs((args.lease_secs / 3).max(1)),
                    ..PoolConfig::default()
                },
                misfire,
                api: api_config,
                alerts: AlertConfig::default(),
                reap_every: Duration::from_secs(1),
            },
        )
        .await?;
        if tenants::tenant(&db, &args.tenant).await?.is_none() {
            tenants::create_tenant(&db, &args.tenant, None, None, None).await?;
        }
        let rows = host.register(&args.tenant, &components).await?;
        if args.demo {
            let now = Utc::now();
            let data = crate::caps::data::DataCapability::new(
                db.clone(),
                &store::demo::example_entities(),
                args.tenant.clone(),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            store::entities::create_entity_tables(&db, &store::demo::example_entities()).await?;
            store::demo::seed(&data, now, chrono_tz::America::New_York)
                .await
                .map_err(|e| anyhow::anyhow!("loading the demo data failed: {e}"))?;
        }

        print_banner(
            args,
            &address.to_string(),
            &rows,
            generated.as_deref(),
            configured.is_some(),
        );
        host.start();
        host.serve(listener);

        shutdown_signal().await;
        eprintln!(
            "shutting down: waiting up to {}s for active executions",
            args.grace_secs
        );
        host.shutdown().await;
        eprintln!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn print_banner(
    args: &RunArgs,
    address: &str,
    rows: &[Registered],
    generated: Option<&str>,
    configured: bool,
) {
    use super::format::{self, Align, Table};
    println!("CodeAI Jobs host {}", env!("CARGO_PKG_VERSION"));
    println!("database  {}", redact(&database_url()));
    println!("workers   {}", args.workers);
    println!("API       http://{address}  (OpenAPI: http://{address}/openapi.json)");
    match (generated, configured) {
        (_, true) => println!("admin     the token in CODEAI_ADMIN_TOKEN"),
        (Some(token), _) => {
            println!("admin     {token}");
            println!(
                "          (generated now and shown once; set CODEAI_ADMIN_TOKEN to choose one)"
            );
        }
        (None, false) => println!(
            "admin     the token generated at the first start (not shown again; \
             `codeai token create --admin` makes another)"
        ),
    }
    let mut table = Table::new(&[
        ("JOB", Align::Left),
        ("SCHEDULE", Align::Left),
        ("TIMEZONE", Align::Left),
        ("QUEUE", Align::Left),
        ("NEXT RUN (UTC)", Align::Left),
        ("VERSION", Align::Right),
    ]);
    for r in rows {
        let m = &r.manifest;
        table.row(vec![
            m.name.clone(),
            format::schedule_described(&m.schedule),
            m.timezone.clone(),
            m.queue.clone(),
            r.next_run_at.map_or("-".to_string(), |t| {
                t.format("%Y-%m-%d %H:%M:%S").to_string()
            }),
            r.version.to_string(),
        ]);
    }
    print!("{}", table.render());
    println!("running; Ctrl-C to stop");
}
