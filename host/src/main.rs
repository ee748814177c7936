//! The `codeai` binary: parses the command line and hands it to [`codeai_host::cli`].

use clap::Parser as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    // The compiler child process of the compile pool (`runtime::compile`), not a user command.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(codeai_host::runtime::compile::CHILD_COMMAND) {
        let code = codeai_host::runtime::compile::child_main(&args[1..]);
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let cli = codeai_host::cli::Cli::parse();
    match codeai_host::cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
