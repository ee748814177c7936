//! `codeai check FILE [--format json]`: parse and check a source file and print its diagnostics;
//! builds nothing.

use codeai_dsl::ast::Span;
use codeai_dsl::diagnostic::Diagnostic;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(super) struct CheckArgs {
    /// The `.codeai` source file.
    pub(super) file: PathBuf,
    /// `human` (rendered with the source, on stderr) or `json` (one document on stdout:
    /// `{file, ok, jobs, errors, warnings, diagnostics: [{file, line, column, end_line,
    /// end_column, severity, message, hint}]}`, for editors and CI annotations).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub(super) format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Format {
    Human,
    Json,
}

pub(super) fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let (display_name, source, diagnostics, jobs) = match super::read_source(&args.file) {
        Ok((display_name, source)) => {
            let (file, mut diagnostics) = codeai_dsl::parse(&source);
            let (jobs, more) = codeai_dsl::check::check(&file, &source, &display_name);
            diagnostics.extend(more);
            (display_name, source, diagnostics, jobs.len())
        }
        // An editor or a CI step asked for JSON: a file it cannot read is a diagnostic too
        // (at line 1, column 1), in the same document.
        Err(e) if args.format == Format::Json => {
            let unread = Diagnostic::error(Span::new(0, 0), format!("{e:#}"))
                .with_hint("check the path: `codeai check` takes a `.codeai` source file");
            (
                args.file.display().to_string(),
                String::new(),
                vec![unread],
                0,
            )
        }
        Err(e) => return Err(e),
    };

    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    if args.format == Format::Json {
        let list: Vec<serde_json::Value> = diagnostics
            .iter()
            .map(|d| d.to_json(&display_name, &source))
            .collect();
        let document = serde_json::json!({
            "file": display_name,
            "ok": errors == 0,
            "jobs": jobs,
            "errors": errors,
            "warnings": warnings,
            "diagnostics": list,
        });
        println!("{document}");
        return Ok(if errors > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
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
