//! The `codeai` command line: argument definitions and one module per command.
//!
//! Each command returns the process's [`ExitCode`] for outcomes the user caused (a source with
//! errors is exit 1, not a crash) and an `anyhow::Error` for everything else, which `main`
//! prints with its context chain. Each command is a variant of [`Command`] with a module of its
//! own.

mod bench;
mod build;
mod check;
mod exec;
mod fmt;
pub(crate) mod format;
mod host;
mod inspect;
mod migrate;
mod schedule;
mod secret;
mod tenant;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// CodeAI Jobs: compile `.codeai` job files into WebAssembly components and run them.
#[derive(Debug, Parser)]
#[command(name = "codeai", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compile every job of a `.codeai` file into its own WebAssembly component.
    #[command(visible_alias = "generate")]
    Build(build::BuildArgs),
    /// Parse and check a `.codeai` file; print its diagnostics without building anything.
    Check(check::CheckArgs),
    /// Rewrite `.codeai` files in the canonical layout (`--check`: change nothing, fail if any differs).
    Fmt(fmt::FmtArgs),
    /// Show the manifest, imports and exports of a job component.
    Inspect(inspect::InspectArgs),
    /// Run one job component once against the configured database and print what it did.
    Exec(exec::ExecArgs),
    /// Apply the platform's migrations and create the tables jobs' entities declare.
    Migrate(migrate::MigrateArgs),
    /// Run the whole platform on this machine (`codeai host run PATH`).
    Host(host::HostArgs),
    /// Run the API and the scheduler (scale-out: workers run apart with `codeai worker start`).
    Run(host::ServeArgs),
    /// Run workers only: `codeai worker start [--concurrency N] [--queues critical,default]`.
    Worker(host::WorkerArgs),
    /// Work with schedules: `schedule next "EXPR"` prints a cron expression's next fire times.
    Schedule(schedule::ScheduleArgs),
    /// Manage tenants: `tenant create NAME`, `tenant list`.
    Tenant(tenant::TenantArgs),
    /// Manage API tokens: `token create --tenant NAME` or `--admin`.
    Token(tenant::TokenArgs),
    /// Manage the secrets jobs read with `env("NAME")`: `secret set|list|delete`, `rotate-key`.
    Secret(secret::SecretArgs),
    /// Measure this machine and backend: `bench throughput [--jobs N] [--concurrency C]`.
    Bench(bench::BenchArgs),
}

/// Runs a parsed command line, its log installed first ([`crate::logging`]): the commands
/// that serve log at `info` in the `--log-format` chosen, the others at `warn` as text.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    use crate::logging::{init, LogFormat};
    match &cli.command {
        Command::Host(args) => init(args.log_format(), "info")?,
        Command::Run(args) => init(args.log.log_format, "info")?,
        Command::Worker(args) => init(args.log_format(), "info")?,
        Command::Bench(_) => init(LogFormat::Pretty, "warn")?,
        // `exec` prints how the execution ended, its calls and its log: the executor's
        // warning, the job's log lines and the integrations' advice to the operator would
        // say each of those a second time on stderr.
        Command::Exec(_) => {
            init(
                LogFormat::Pretty,
                "warn,codeai_host::executor=error,codeai_host::caps::log=off,\
                 codeai_host::integrations=error",
            )?;
            quiet_on_closed_pipe();
        }
        _ => {
            init(LogFormat::Pretty, "warn")?;
            quiet_on_closed_pipe();
        }
    }
    match cli.command {
        Command::Build(args) => build::run(&args),
        Command::Check(args) => check::run(&args),
        Command::Fmt(args) => fmt::run(&args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Exec(args) => exec::run(&args),
        Command::Migrate(args) => migrate::run(&args),
        Command::Host(args) => host::run(&args),
        Command::Run(args) => host::run_serve(&args),
        Command::Worker(args) => host::run_worker(&args),
        Command::Schedule(args) => schedule::run(&args),
        Command::Tenant(args) => tenant::run_tenant(&args),
        Command::Token(args) => tenant::run_token(&args),
        Command::Secret(args) => secret::run(&args),
        Command::Bench(args) => bench::run(&args),
    }
}

/// A command that prints and ends (`codeai exec … | head`) stops quietly when its reader
/// goes away, as Unix tools do, instead of panicking in `println!` on the broken pipe: the
/// default action of `SIGPIPE` is restored (Rust ignores it). The commands that serve keep
/// it ignored: a peer closing a socket must not end the server.
fn quiet_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called once at start, before any thread of this process writes to a pipe;
    // `SIG_DFL` is a valid disposition for `SIGPIPE`.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Reads a source file; returns its text and the name diagnostics and manifests show for it.
fn read_source(path: &std::path::Path) -> anyhow::Result<(String, String)> {
    use anyhow::Context as _;
    let source = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read `{}`", path.display()))?;
    Ok((path.display().to_string(), source))
}

/// The `.wasm` files of a folder, by name.
fn wasm_files(dir: &std::path::Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    use anyhow::Context as _;
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("failed to read `{}`", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn generate_is_an_alias_of_build() {
        let cli = Cli::try_parse_from(["codeai", "generate", "jobs.codeai", "-o", "dist"]).unwrap();
        match cli.command {
            Command::Build(args) => {
                assert_eq!(args.file, std::path::Path::new("jobs.codeai"));
                assert_eq!(args.out_dir, std::path::Path::new("dist"));
            }
            other => panic!("expected build, got {other:?}"),
        }
        let cli = Cli::try_parse_from(["codeai", "build", "jobs.codeai"]).unwrap();
        match cli.command {
            Command::Build(args) => assert_eq!(args.out_dir, std::path::Path::new("out")),
            other => panic!("expected build, got {other:?}"),
        }
    }
}
