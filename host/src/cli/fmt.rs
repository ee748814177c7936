//! `codeai fmt [--check] FILE…`: rewrite `.codeai` files in the canonical layout
//! ([`codeai_dsl::format`]); with `--check`, write nothing and fail when a file would change.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(super) struct FmtArgs {
    /// The `.codeai` source files.
    #[arg(required = true)]
    pub(super) files: Vec<PathBuf>,
    /// Write nothing: list the files whose layout differs and exit with 1 if there are any
    /// (for CI).
    #[arg(long)]
    pub(super) check: bool,
}

pub(super) fn run(args: &FmtArgs) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    let mut failed = false;
    let mut differ = Vec::new();
    for path in &args.files {
        let (name, source) = super::read_source(path)?;
        let formatted = match codeai_dsl::format::format(&source) {
            Ok(formatted) => formatted,
            Err(codeai_dsl::format::FormatError::Syntax(diagnostics)) => {
                eprintln!(
                    "{}",
                    codeai_dsl::diagnostic::render_all(&name, &source, &diagnostics)
                );
                eprintln!("error: `{name}` does not parse; it was not formatted");
                failed = true;
                continue;
            }
            Err(e) => anyhow::bail!("`{name}`: {e}"),
        };
        if formatted == source {
            continue;
        }
        if args.check {
            println!("{name}");
        } else {
            std::fs::write(path, &formatted)
                .with_context(|| format!("failed to write `{name}`"))?;
            eprintln!("formatted `{name}`");
        }
        differ.push(name);
    }
    if args.check && !differ.is_empty() {
        eprintln!(
            "error: {} file{} not in the canonical layout; `codeai fmt FILE` rewrites {}",
            differ.len(),
            if differ.len() == 1 { " is" } else { "s are" },
            if differ.len() == 1 { "it" } else { "them" },
        );
        failed = true;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
