//! `codeai check FILE`: parse and check a source file and print its diagnostics; builds nothing.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(super) struct CheckArgs {
    /// The `.codeai` source file.
    pub(super) file: PathBuf,
}

pub(super) fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let (display_name, source) = super::read_source(&args.file)?;
    let (file, mut diagnostics) = codeai_dsl::parse(&source);
    let (jobs, more) = codeai_dsl::check::check(&file, &source, &display_name);
    diagnostics.extend(more);

    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    if !diagnostics.is_empty() {
        eprintln!(
            "{}",
            codeai_dsl::diagnostic::render_all(&display_name, &source, &diagnostics)
        );
    }
    if errors > 0 {
        eprintln!(
            "error: {errors} error{}, {warnings} warning{} in `{display_name}`",
            plural(errors),
            plural(warnings)
        );
        return Ok(ExitCode::FAILURE);
    }
    let jobs = jobs.len();
    if warnings == 0 {
        println!("ok: {jobs} job{}, no problems", plural(jobs));
    } else {
        println!(
            "ok: {jobs} job{}, {warnings} warning{}",
            plural(jobs),
            plural(warnings)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
