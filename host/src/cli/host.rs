//! `codeai host run PATH`: everything on one machine — compiles the jobs if PATH is a `.codeai`
//! file (or takes the `.wasm` components of a folder), applies the migrations, creates the entity
//! tables, registers the jobs, then runs the scheduler, the worker pool and the lease reaper until
//! SIGINT/SIGTERM, and shuts down gracefully (active executions finish within the grace period;
//! the rest go back on the queue).

use super::exec::{database_url, open_database, redact};
use crate::caps::platform::{Platform, PlatformConfig};
use crate::executor::Executor;
use crate::queue::{QueueConfig, SqlQueue};
use crate::runtime::{Runtime, RuntimeConfig};
use crate::scheduler::{MisfirePolicy, Scheduler};
use crate::store::{self, platform as pstore};
use crate::worker::{run_reaper, run_scheduler, PoolConfig, WorkerPool};
use anyhow::Context as _;
use chrono::Utc;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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
    /// Where the HTTP API listens (it arrives with the API issue; the address is reserved).
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
    let components = components(&args.path)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let db = open_database().await?;
        let runtime = Runtime::new(RuntimeConfig::default())?;
        let platform = Platform::new(
            db.clone(),
            PlatformConfig::from_env().map_err(anyhow::Error::msg)?,
        );
        let executor = Arc::new(Executor::new(runtime, platform));
        let queue = Arc::new(SqlQueue::new(
            db.clone(),
            QueueConfig {
                strict: args.strict_priority,
                lease: Duration::from_secs(args.lease_secs.max(1)),
                ..QueueConfig::default()
            },
        ));
        let scheduler = Arc::new(Scheduler::new(queue.clone(), misfire));

        // Register every job (a changed component becomes a new version).
        let now = Utc::now();
        let mut rows = Vec::new();
        let mut entities = Vec::new();
        for (file, bytes) in &components {
            let job = executor
                .runtime()
                .prepare(bytes)
                .with_context(|| format!("`{file}` cannot run"))?;
            let manifest = job.manifest_arc();
            for e in &manifest.entities {
                if !entities
                    .iter()
                    .any(|x: &codeai_ir::EntityDecl| x.table == e.table)
                {
                    entities.push(e.clone());
                }
            }
            let hash = crate::runtime::cache::hex(job.hash());
            let reg = pstore::register_job(&db, &args.tenant, &manifest, bytes, &hash).await?;
            let scheduled = scheduler
                .add(
                    &reg.job_id,
                    &args.tenant,
                    reg.version,
                    manifest.clone(),
                    now,
                )
                .await
                .with_context(|| format!("job `{}`", manifest.name))?;
            rows.push((manifest, scheduled.next_run_at, reg));
        }
        store::entities::create_entity_tables(&db, &entities).await?;
        if args.demo {
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

        let pool = WorkerPool::new(
            queue.clone(),
            executor.clone(),
            PoolConfig {
                slots: args.workers.max(1),
                grace: Duration::from_secs(args.grace_secs),
                heartbeat: Duration::from_secs((args.lease_secs / 3).max(1)),
                ..PoolConfig::default()
            },
        );

        print_banner(args, &rows);
        let stop = Arc::new(AtomicBool::new(false));
        let workers = tokio::spawn(pool.clone().run());
        let sched = tokio::spawn(run_scheduler(scheduler.clone(), pool.clone(), stop.clone()));
        let reaper = tokio::spawn(run_reaper(
            queue.clone(),
            Duration::from_secs(1),
            stop.clone(),
        ));

        shutdown_signal().await;
        eprintln!(
            "shutting down: waiting up to {}s for active executions",
            args.grace_secs
        );
        stop.store(true, Ordering::SeqCst);
        pool.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = sched.await;
            let _ = reaper.await;
        })
        .await;
        workers.abort();
        db.close().await;
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

/// One job in the banner: its manifest, next fire and registration.
type BannerRow = (
    Arc<codeai_ir::Manifest>,
    Option<chrono::DateTime<Utc>>,
    pstore::Registered,
);

fn print_banner(args: &RunArgs, rows: &[BannerRow]) {
    use super::format::{self, Align, Table};
    println!("CodeAI Jobs host {}", env!("CARGO_PKG_VERSION"));
    println!("database  {}", redact(&database_url()));
    println!("workers   {}", args.workers);
    println!(
        "API       http://{} (not served yet: the HTTP API arrives with its issue)",
        args.listen
    );
    let mut table = Table::new(&[
        ("JOB", Align::Left),
        ("SCHEDULE", Align::Left),
        ("TIMEZONE", Align::Left),
        ("QUEUE", Align::Left),
        ("NEXT RUN (UTC)", Align::Left),
        ("VERSION", Align::Right),
    ]);
    for (m, next, reg) in rows {
        table.row(vec![
            m.name.clone(),
            format::schedule_described(&m.schedule),
            m.timezone.clone(),
            m.queue.clone(),
            next.map_or("-".to_string(), |t| {
                t.format("%Y-%m-%d %H:%M:%S").to_string()
            }),
            reg.version.to_string(),
        ]);
    }
    print!("{}", table.render());
    println!("running; Ctrl-C to stop");
}
