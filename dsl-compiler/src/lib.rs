//! The CodeAI job DSL compiler: `.codeai` text in, one WebAssembly component per job out.
//!
//! The pipeline is [`parse`] (text → [`ast::File`] with spans; never fails, collects syntax
//! diagnostics) → [`check::check`] (names, types, cron, timezones, durations → one
//! [`codeai_ir::Program`] and [`codeai_ir::Manifest`] per job; collects semantic diagnostics) →
//! [`emit::emit`] (the embedded guest runtime's component, the same for every job, + the program
//! and the manifest as custom sections → component bytes).
//!
//! This crate knows nothing about wasmtime, databases or the network.

pub mod ast;
pub mod check;
pub mod diagnostic;
pub mod emit;
pub mod format;
pub mod parser;

pub use check::CheckedJob;
pub use diagnostic::{Diagnostic, Severity};
pub use parser::parse;

use std::time::{Duration, Instant};

/// One job's build output.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The job's name as declared (`DailySalesReport`).
    pub name: String,
    /// `daily_sales_report.wasm`.
    pub file_name: String,
    /// The component.
    pub bytes: Vec<u8>,
    pub manifest: codeai_ir::Manifest,
    /// Time spent emitting this component (the shared parse and check are not included).
    pub emit_time: Duration,
}

/// A build that did not produce components: the diagnostics say why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} error(s) in the source", .diagnostics.iter().filter(|d| d.is_error()).count())]
pub struct BuildFailed {
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses and checks a source file; returns every diagnostic (errors and warnings), in source order.
pub fn check_source(source: &str) -> Vec<Diagnostic> {
    let (file, mut diagnostics) = parse(source);
    let (_, more) = check::check(&file, source, "<source>");
    diagnostics.extend(more);
    diagnostics.sort_by_key(|d| (d.span.start, d.span.end));
    diagnostics
}

/// Compiles a source file into one component per job.
///
/// `source_file` is the file's name as recorded in each manifest. Warnings do not stop a build;
/// they are returned beside the artefacts.
pub fn compile(
    source_file: &str,
    source: &str,
) -> Result<(Vec<Artifact>, Vec<Diagnostic>), BuildFailed> {
    let (file, mut diagnostics) = parse(source);
    let (jobs, more) = check::check(&file, source, source_file);
    diagnostics.extend(more);
    diagnostics.sort_by_key(|d| (d.span.start, d.span.end));
    if diagnostics.iter().any(Diagnostic::is_error) {
        return Err(BuildFailed { diagnostics });
    }
    let mut artifacts = Vec::with_capacity(jobs.len());
    for job in jobs {
        let started = Instant::now();
        let bytes = emit::emit(&job.program, &job.manifest).map_err(|e| BuildFailed {
            diagnostics: vec![Diagnostic::error(
                ast::Span::default(),
                format!(
                    "could not emit the component of job `{}`: {e}",
                    job.manifest.name
                ),
            )],
        })?;
        artifacts.push(Artifact {
            file_name: format!("{}.wasm", snake_case(&job.manifest.name)),
            name: job.manifest.name.clone(),
            bytes,
            manifest: job.manifest,
            emit_time: started.elapsed(),
        });
    }
    Ok((artifacts, diagnostics))
}

/// `DailySalesReport` → `daily_sales_report`, `LowStockAlert2` → `low_stock_alert2`,
/// `HTTPPoller` → `http_poller`.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev = i.checked_sub(1).map(|j| chars[j]);
            let next = chars.get(i + 1).copied();
            let boundary = match prev {
                Some(p) if p.is_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_uppercase() => next.is_some_and(|n| n.is_lowercase()),
                _ => false,
            };
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn snake_case_splits_words_and_acronyms() {
        for (input, expected) in [
            ("DailySalesReport", "daily_sales_report"),
            ("HTTPPoller", "http_poller"),
            ("LowStockAlert2", "low_stock_alert2"),
            ("already_snake", "already_snake"),
            ("A", "a"),
        ] {
            assert_eq!(snake_case(input), expected, "{input}");
        }
    }
}
