//! `codeai build FILE [-o DIR]` (alias `codeai generate`): one component per job, written as
//! `<job_name>.wasm` into the output directory, then a summary table.

use super::format::{job_cells, job_table, Align};
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub(super) struct BuildArgs {
    /// The `.codeai` source file.
    pub(super) file: PathBuf,
    /// Where to write the components.
    #[arg(short = 'o', long = "out-dir", default_value = "out")]
    pub(super) out_dir: PathBuf,
}

pub(super) fn run(args: &BuildArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let (display_name, source) = super::read_source(&args.file)?;
    // Manifests record the file's name, not the path it was built from.
    let file_name = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| display_name.clone());
    let (artifacts, warnings) = match codeai_dsl::compile(&file_name, &source) {
        Ok(built) => built,
        Err(failed) => {
            eprint!(
                "{}",
                codeai_dsl::diagnostic::render_all(&display_name, &source, &failed.diagnostics)
            );
            eprintln!("\nerror: {failed}; nothing was built");
            return Ok(ExitCode::FAILURE);
        }
    };
    if !warnings.is_empty() {
        eprintln!(
            "{}",
            codeai_dsl::diagnostic::render_all(&display_name, &source, &warnings)
        );
    }

    write_artifacts(&args.out_dir, &artifacts)?;

    let mut table = job_table(&[("SIZE", Align::Right), ("BUILD TIME", Align::Right)]);
    for artifact in &artifacts {
        let mut cells = job_cells(&artifact.manifest, false);
        cells.push(format!("{:.1} KiB", artifact.bytes.len() as f64 / 1024.0));
        cells.push(format!(
            "{:.2} ms",
            artifact.emit_time.as_secs_f64() * 1000.0
        ));
        table.row(cells);
    }
    print!("{}", table.render());
    println!(
        "built {} job{} in {:.2} ms → {}",
        artifacts.len(),
        if artifacts.len() == 1 { "" } else { "s" },
        started.elapsed().as_secs_f64() * 1000.0,
        args.out_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn write_artifacts(out_dir: &Path, artifacts: &[codeai_dsl::Artifact]) -> anyhow::Result<()> {
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("failed to create `{}`", out_dir.display()))?;
    for artifact in artifacts {
        let path = out_dir.join(&artifact.file_name);
        std::fs::write(&path, &artifact.bytes)
            .with_context(|| format!("failed to write `{}`", path.display()))?;
    }
    Ok(())
}
