//! The `codeai` binary: parses the command line and hands it to [`codeai_host::cli`].

use clap::Parser as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = codeai_host::cli::Cli::parse();
    match codeai_host::cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
