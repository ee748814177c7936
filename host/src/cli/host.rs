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
use crate::app::{Host, HostConfig, Registered, Role};
use crate::queue::{parse_weights, QueueConfig, RedisQueue, DEFAULT_QUEUES};
use crate::runtime::RuntimeConfig;
use crate::scheduler::MisfirePolicy;
use crate::services::ServicesConfig;
use crate::store::{self, tenants};
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
    #[command(flatten)]
    pub(super) serve: ServeOptions,
    /// Executions at once.
    #[arg(long, default_value_t = 10)]
    pub(super) workers: usize,
    #[command(flatten)]
    pub(super) queue: QueueArgs,
    /// Load the example's demo data into the entity tables first.
    #[arg(long)]
    pub(super) demo: bool,
    #[command(flatten)]
    pub(super) log: crate::logging::LogArgs,
}

/// How a process that runs executions takes them from the queues.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct QueueArgs {
    #[command(flatten)]
    pub(super) layout: QueueLayout,
    /// Serve the heaviest non-empty queue first instead of sharing by weight.
    #[arg(long)]
    pub(super) strict_priority: bool,
    /// Seconds shutdown waits for active executions.
    #[arg(long, default_value_t = 30)]
    pub(super) grace_secs: u64,
}

/// What every process that enqueues or leases tasks agrees on: the queues and the lease length.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct QueueLayout {
    /// The queues and their weights, e.g. `critical=6,default=3,low=1,reports=2` (each 1 to
    /// 1000; `default` required); jobs name a queue, they set no weight.
    #[arg(long, env = "CODEAI_QUEUES", default_value = DEFAULT_QUEUES)]
    pub(super) queue_weights: String,
    /// Seconds a task's lease lasts without a heartbeat (a crashed host's tasks run again after it).
    #[arg(long, env = "CODEAI_LEASE_SECS", default_value_t = 30)]
    pub(super) lease_secs: u64,
}

/// What a process that serves the API and schedules jobs is told.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct ServeOptions {
    /// Where the HTTP API listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(super) listen: String,
    /// The tenant PATH's jobs are registered for.
    #[arg(long, default_value = store::platform::DEFAULT_TENANT)]
    pub(super) tenant: String,
    /// What to do with fires missed while no scheduler ran: `run-once` or `skip`.
    #[arg(long, default_value = "run-once")]
    pub(super) misfire: String,
}

/// `codeai run [PATH]`: the API and the scheduler, no workers.
#[derive(Debug, clap::Args)]
pub(super) struct ServeArgs {
    /// A `.codeai` file or a folder of `.wasm` jobs to register first (optional: jobs already
    /// in the database, built or uploaded, are served either way).
    pub(super) path: Option<PathBuf>,
    #[command(flatten)]
    pub(super) serve: ServeOptions,
    #[command(flatten)]
    pub(super) queues: QueueLayout,
    #[command(flatten)]
    pub(super) log: crate::logging::LogArgs,
}

#[derive(Debug, clap::Args)]
pub(super) struct WorkerArgs {
    #[command(subcommand)]
    pub(super) action: WorkerAction,
}

#[derive(Debug, clap::Subcommand)]
pub(super) enum WorkerAction {
    /// Run workers only: take tasks from the queue (Redis with `REDIS_URL`) and execute them.
    Start(WorkerStartArgs),
}

#[derive(Debug, clap::Args)]
pub(super) struct WorkerStartArgs {
    /// Executions at once.
    #[arg(long, default_value_t = 10)]
    pub(super) concurrency: usize,
    /// Take tasks only from these queues, e.g. `critical,default`.
    #[arg(long, value_delimiter = ',')]
    pub(super) queues: Option<Vec<String>>,
    #[command(flatten)]
    pub(super) queue: QueueArgs,
    #[command(flatten)]
    pub(super) log: crate::logging::LogArgs,
}

impl HostArgs {
    pub(super) fn log_format(&self) -> crate::logging::LogFormat {
        let HostAction::Run(args) = &self.action;
        args.log.log_format
    }
}

impl WorkerArgs {
    pub(super) fn log_format(&self) -> crate::logging::LogFormat {
        let WorkerAction::Start(args) = &self.action;
        args.log.log_format
    }
}

/// What one process runs, from any of the three commands.
struct Launch {
    role: Role,
    path: Option<PathBuf>,
    listen: Option<String>,
    workers: usize,
    tenant: String,
    misfire: String,
    queue: QueueArgs,
    demo: bool,
    /// The queues a worker takes from (all when `None`).
    queues: Option<Vec<String>>,
}

pub(super) fn run_serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    launch(Launch {
        role: Role::Api,
        path: args.path.clone(),
        listen: Some(args.serve.listen.clone()),
        workers: 0,
        tenant: args.serve.tenant.clone(),
        misfire: args.serve.misfire.clone(),
        queue: QueueArgs {
            layout: args.queues.clone(),
            strict_priority: false,
            grace_secs: 0,
        },
        demo: false,
        queues: None,
    })
}

pub(super) fn run_worker(args: &WorkerArgs) -> anyhow::Result<ExitCode> {
    let WorkerAction::Start(args) = &args.action;
    launch(Launch {
        role: Role::Worker,
        path: None,
        listen: None,
        workers: args.concurrency,
        tenant: store::platform::DEFAULT_TENANT.into(),
        misfire: "run-once".into(),
        queue: args.queue.clone(),
        demo: false,
        queues: args.queues.clone(),
    })
}

/// `REDIS_URL`, connected; `None` when unset.
async fn redis_from_env() -> anyhow::Result<Option<RedisQueue>> {
    let Some(url) = std::env::var("REDIS_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    else {
        return Ok(None);
    };
    let prefix = std::env::var("CODEAI_REDIS_PREFIX").unwrap_or_else(|_| "codeai:".into());
    Ok(Some(
        RedisQueue::connect(&url, &prefix)
            .await
            .with_context(|| format!("failed to connect to REDIS_URL `{}`", redact(&url)))?,
    ))
}

/// The components to register: compiled from a `.codeai` file, or read from a folder.
fn components(path: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    if path.is_dir() {
        let files = super::wasm_files(path)?;
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
    launch(Launch {
        role: Role::All,
        path: Some(args.path.clone()),
        listen: Some(args.serve.listen.clone()),
        workers: args.workers,
        tenant: args.serve.tenant.clone(),
        misfire: args.serve.misfire.clone(),
        queue: args.queue.clone(),
        demo: args.demo,
        queues: None,
    })
}

fn launch(args: Launch) -> anyhow::Result<ExitCode> {
    let misfire = match args.misfire.as_str() {
        "run-once" => MisfirePolicy::RunOnce,
        "skip" => MisfirePolicy::Skip,
        other => anyhow::bail!("--misfire `{other}`: expected `run-once` or `skip`"),
    };
    let weights = parse_weights(&args.queue.layout.queue_weights)
        .map_err(|e| anyhow::anyhow!("--queue-weights (CODEAI_QUEUES): {e}"))?;
    let api_config = ApiConfig::from_env().map_err(anyhow::Error::msg)?;
    let components = match &args.path {
        Some(path) => components(path)?,
        None => Vec::new(),
    };
    // Traces when OTEL_EXPORTER_OTLP_ENDPOINT names a collector (outside the runtime: the
    // exporter sends from a thread of its own).
    let telemetry = crate::telemetry::init(|name| std::env::var(name).ok())?;
    let rt = tokio::runtime::Runtime::new()?;
    let code = rt.block_on(async {
        // Bind first: a busy port is an error before anything else starts.
        let listener = match &args.listen {
            Some(listen) => Some(
                tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("cannot listen on `{listen}` (--listen)"))?,
            ),
            None => None,
        };
        let db = open_database().await?;
        // One host process per SQLite file (store/host_lock.rs), held until the process ends.
        let _host_lock = store::host_lock::take(&db)?;
        let redis = redis_from_env().await?;
        let configured = std::env::var("CODEAI_ADMIN_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty());
        let generated = if args.role == Role::Worker {
            None
        } else {
            tenants::ensure_admin_token(&db, configured.as_deref()).await?
        };
        let mut services = ServicesConfig::from_env().map_err(anyhow::Error::msg)?;
        // Jobs must not call this host's own API (the interfaces' addresses are in already).
        if let Some(addr) = listener.as_ref().and_then(|l| l.local_addr().ok()) {
            services.egress.listening_on(addr);
        }
        let mut host = Host::new(
            db.clone(),
            HostConfig {
                role: args.role,
                redis: redis.clone(),
                runtime: RuntimeConfig {
                    compile: crate::runtime::compile::CompileLimits::from_env()
                        .map_err(anyhow::Error::msg)?,
                    ..RuntimeConfig::default()
                },
                services,
                queue: QueueConfig {
                    weights,
                    strict: args.queue.strict_priority,
                    lease: Duration::from_secs(args.queue.layout.lease_secs.max(1)),
                    only: args.queues.clone(),
                },
                pool: PoolConfig {
                    slots: args.workers.max(1),
                    grace: Duration::from_secs(args.queue.grace_secs),
                    heartbeat: Duration::from_secs((args.queue.layout.lease_secs / 3).max(1)),
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
            let data = crate::store::query::EntityQueries::new(
                db.clone(),
                &store::demo::example_entities(),
                args.tenant.clone(),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            store::entities::create_entity_tables(
                &db,
                &args.tenant,
                &store::demo::example_entities(),
            )
            .await?;
            store::demo::seed(&data, now, chrono_tz::America::New_York)
                .await
                .map_err(|e| anyhow::anyhow!("loading the demo data failed: {e}"))?;
        }

        // Jobs whose integrations are not configured fail at their first call: say so now.
        let jobs = host.scheduler.jobs();
        crate::integrations::warn_unset(
            &db,
            host.executor.services().config(),
            jobs.iter().map(|j| (j.tenant.as_str(), &*j.manifest)),
        )
        .await;

        let address = listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.to_string());
        print_banner(
            &args,
            address.as_deref(),
            redis.as_ref(),
            &rows,
            jobs.len(),
            generated.as_deref(),
            configured.is_some(),
        );
        host.start();
        if let Some(listener) = listener {
            host.serve(listener);
        }

        shutdown_signal().await;
        tracing::info!(
            grace_secs = args.queue.grace_secs,
            "shutting down: waiting for active executions"
        );
        host.shutdown().await;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    });
    drop(rt);
    if let Some(telemetry) = telemetry {
        telemetry.shutdown();
    }
    code
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
    args: &Launch,
    address: Option<&str>,
    redis: Option<&RedisQueue>,
    rows: &[Registered],
    loaded: usize,
    generated: Option<&str>,
    configured: bool,
) {
    use super::format::{job_cells, job_table, Align};
    println!("CodeAI Jobs host {}", env!("CARGO_PKG_VERSION"));
    println!("database  {}", redact(&database_url()));
    match redis {
        Some(r) => println!(
            "queue     redis {} (prefix `{}`)",
            redact(&std::env::var("REDIS_URL").unwrap_or_default()),
            r.prefix()
        ),
        None => println!("queue     the database's `tasks` table"),
    }
    println!(
        "queues    {}",
        args.queue.layout.queue_weights.replace(',', ", ")
    );
    match args.role {
        Role::Api => println!("workers   none in this process (`codeai worker start`)"),
        _ => println!(
            "workers   {}{}",
            args.workers,
            args.queues
                .as_ref()
                .map_or(String::new(), |q| format!(" on {}", q.join(",")))
        ),
    }
    if let Some(address) = address {
        println!("API       http://{address}  (OpenAPI: http://{address}/openapi.json)");
        println!("dashboard http://{address}/ui/  (sign in with an API token)");
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
    }
    if rows.is_empty() {
        if loaded == 0 {
            let api = address.unwrap_or("HOST:PORT");
            println!("jobs      none registered yet; to register some, either");
            println!("          - start with a DSL file or a folder of built jobs:");
            println!("              codeai run examples/05-scheduled-jobs/scheduled-jobs.codeai");
            println!("          - or upload a built job (`codeai build FILE -o out`):");
            println!(
                "              curl -X POST http://{api}/jobs -H \"Authorization: Bearer $TOKEN\" \\"
            );
            println!(
                "                -H \"Content-Type: application/wasm\" --data-binary @out/JOB.wasm"
            );
        }
        println!("running; Ctrl-C to stop");
        return;
    }
    let mut table = job_table(&[("NEXT RUN (UTC)", Align::Left), ("VERSION", Align::Right)]);
    for r in rows {
        let mut cells = job_cells(&r.manifest, true);
        cells.push(match (r.enabled, r.next_run_at) {
            (false, _) => "paused".to_string(),
            (true, Some(t)) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
            (true, None) => "-".to_string(),
        });
        cells.push(r.version.to_string());
        table.row(cells);
    }
    print!("{}", table.render());
    println!("running; Ctrl-C to stop");
}
