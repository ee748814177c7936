//! `codeai exec JOB.wasm [--input JSON]`: runs one job component once against the configured
//! database (`DATABASE_URL`, default `sqlite:codeai.db`) with the real capabilities, records the
//! execution, and prints the result, the log, the capability calls and the figures.

use super::format::{Align, Table};
use crate::executor::{Executor, Request};
use crate::runtime::{ExecOptions, Runtime, RuntimeConfig, Status};
use crate::services::{Services, ServicesConfig};
use crate::store::{self, Database};
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub(super) struct ExecArgs {
    /// The compiled job component (`codeai build` output).
    pub(super) component: PathBuf,
    /// The trigger's input, a JSON object (merged over the job's declared input defaults).
    #[arg(long, default_value = "{}")]
    pub(super) input: String,
    /// The tenant the job runs for.
    #[arg(long, default_value = store::platform::DEFAULT_TENANT)]
    pub(super) tenant: String,
    /// The instant the job's clock starts at (RFC 3339), e.g. a past fire time; default now.
    #[arg(long)]
    pub(super) now: Option<String>,
    /// Overrides the job's `timeout:` (e.g. `30s`, `5m`).
    #[arg(long, value_parser = crate::describe::parse_duration)]
    pub(super) timeout: Option<Duration>,
    /// Overrides the fuel budget.
    #[arg(long)]
    pub(super) fuel: Option<u64>,
    /// Print the execution as one JSON object instead of text.
    #[arg(long)]
    pub(super) json: bool,
}

/// The database the commands use: `DATABASE_URL`, or `codeai.db` in the working directory.
pub(super) fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "sqlite:codeai.db".to_string())
}

/// Connects and applies the platform's migrations.
pub(super) async fn open_database() -> anyhow::Result<Database> {
    let url = database_url();
    let db = Database::connect(&url)
        .await
        .with_context(|| format!("failed to open the database `{}`", redact(&url)))?;
    store::migrate::migrate_up(&db)
        .await
        .context("failed to apply the platform's migrations")?;
    Ok(db)
}

/// A database URL without its password, for messages.
pub(super) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

pub(super) fn run(args: &ExecArgs) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.component)
        .with_context(|| format!("failed to read `{}`", args.component.display()))?;
    let now = args
        .now
        .as_deref()
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .with_context(|| format!("--now `{t}` is not an RFC 3339 instant"))
        })
        .transpose()?;
    let input: serde_json::Value =
        serde_json::from_str(&args.input).context("--input is not JSON")?;
    anyhow::ensure!(input.is_object(), "--input must be a JSON object");

    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let db = open_database().await?;
        let runtime = Runtime::new(RuntimeConfig {
            pool_size: 4,
            ..RuntimeConfig::default()
        })?;
        let job = runtime
            .prepare(&bytes)
            .with_context(|| format!("`{}` cannot run", args.component.display()))?;
        let manifest = job.manifest().clone();
        store::entities::create_entity_tables(&db, &args.tenant, &manifest.entities)
            .await
            .context("failed to create the job's entity tables")?;
        let registered = store::platform::register_job(&db, &args.tenant, &manifest, &bytes, &crate::runtime::cache::hex(job.hash()))
            .await
            .context("failed to register the job")?;
        let services = Services::new(
            db.clone(),
            ServicesConfig::from_env().map_err(anyhow::Error::msg)?,
        );
        let executor = Executor::new(runtime, services);
        let input_text = input.to_string();
        let recorded = executor
            .run(
                &job,
                Request {
                    tenant: &args.tenant,
                    job_id: &registered.job_id,
                    job_version: Some(registered.version),
                    trigger: "manual",
                    input: &input_text,
                    now,
                    attempt: 1,
                    max_attempts: 1,
                    execution_id: None,
                    scheduled_at: None,
                    options: ExecOptions {
                        timeout: args.timeout,
                        fuel: args.fuel,
                        ..ExecOptions::default()
                    },
                },
            )
            .await?;
        db.close().await;
        let r = &recorded.result;
        // Where the execution's record went (the job is registered there too).
        let database = redact(&database_url());
        if args.json {
            let out = serde_json::json!({
                "execution_id": recorded.execution_id.to_string(),
                "database": database,
                "job": manifest.name,
                "status": r.status.as_str(),
                "output": r.output.as_deref().and_then(|o| serde_json::from_str::<serde_json::Value>(o).ok()),
                "error": r.error,
                "step": r.step,
                "fuel_used": r.fuel_used,
                "wall_time_ms": r.wall_time.as_secs_f64() * 1000.0,
                "log": r.logs.iter().map(|l| serde_json::json!({"level": l.level_name(), "message": l.message})).collect::<Vec<_>>(),
                "calls": r.calls.iter().map(|c| serde_json::json!({"call": c.call, "detail": c.detail, "duration_ms": c.duration.as_secs_f64() * 1000.0, "error": c.error})).collect::<Vec<_>>(),
                "denied": r.denied,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            print_text(&manifest.name, recorded.execution_id, r, &database);
        }
        Ok(match r.status {
            Status::Completed | Status::Skipped => ExitCode::SUCCESS,
            _ => ExitCode::FAILURE,
        })
    })
}

fn print_text(job: &str, id: uuid::Uuid, r: &crate::runtime::ExecResult, database: &str) {
    println!("{job}  execution {id}");
    println!("status     {}", r.status.as_str());
    println!("recorded   in {database}");
    if let Some(step) = &r.step {
        println!("step       {step}");
    }
    if let Some(error) = &r.error {
        let label = if r.status == Status::Skipped {
            "reason"
        } else {
            "error"
        };
        println!("{label:<10} {error}");
    }
    println!("fuel used  {}", r.fuel_used);
    println!("wall time  {:.2} ms", r.wall_time.as_secs_f64() * 1000.0);
    if !r.calls.is_empty() {
        println!("\ncapability calls:");
        let mut table = Table::new(&[
            ("AT", Align::Right),
            ("CALL", Align::Left),
            ("TIME", Align::Right),
            ("DETAIL", Align::Left),
        ]);
        for c in &r.calls {
            let detail = match &c.error {
                Some(e) => format!("{} → {e}", c.detail),
                None => c.detail.clone(),
            };
            table.row(vec![
                format!("{:.1} ms", c.at.as_secs_f64() * 1000.0),
                c.call.to_string(),
                format!("{:.2} ms", c.duration.as_secs_f64() * 1000.0),
                detail,
            ]);
        }
        print!("{}", table.render());
    }
    if !r.logs.is_empty() {
        println!("\nlog:");
        for line in &r.logs {
            println!("  {:<5} {}", line.level_name(), line.message);
        }
    }
    if !r.denied.is_empty() {
        println!("\ndenied: {}", r.denied.join(", "));
    }
    if let Some(output) = &r.output {
        println!("\noutput: {}", truncate(output, 2000));
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}
