//! The process's log: `tracing` events written to stderr, one per line, as text a person reads
//! (`--log-format pretty`, the default) or as JSON objects (`--log-format json`).
//!
//! What is written is chosen like `RUST_LOG` does it (`tracing_subscriber::EnvFilter`
//! directives such as `info` or `warn,codeai_host=debug`), read from `CODEAI_LOG` when it is set
//! and from `RUST_LOG` otherwise; when neither is set, the command's default (`info` for the
//! commands that serve, `warn` for the one-shot commands, whose results are their output).
//! stdout stays the command's own output (the banner of `codeai host run`, the tables of the
//! other commands).
//!
//! What the host logs never holds a secret: the execution lines carry the result after its
//! redaction ([`crate::caps::env::Redactor`]), errors of integration calls name the
//! integration and the path but never the URL or a credential, and the warnings about unset
//! variables name the variable, not a value.

use std::io::IsTerminal as _;
use tracing_subscriber::EnvFilter;

/// The variable that chooses what is logged, before `RUST_LOG`.
pub const LOG_VAR: &str = "CODEAI_LOG";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event (colours on a terminal).
    #[default]
    Pretty,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the event's
    /// fields (`job`, `tenant`, `execution`, …) at the top level.
    Json,
}

/// The `--log-format` option of the commands that serve.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// How log lines are written to stderr: `pretty` or `json` (what is logged: `CODEAI_LOG`,
    /// else `RUST_LOG`, default `info`).
    #[arg(long, value_enum, env = "CODEAI_LOG_FORMAT", default_value = "pretty")]
    pub log_format: LogFormat,
}

/// The filter directives in force: `CODEAI_LOG`, else `RUST_LOG`, else `default` (empty values
/// count as unset).
pub fn directives(var: impl Fn(&str) -> Option<String>, default: &str) -> String {
    [LOG_VAR, "RUST_LOG"]
        .iter()
        .filter_map(|name| var(name))
        .map(|v| v.trim().to_string())
        .find(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// Installs the process's subscriber: events to stderr in `format`, filtered by
/// [`directives`]. Directives that do not parse are an error (a typo must not silence the
/// log). Installing twice keeps the first.
pub fn init(format: LogFormat, default: &str) -> anyhow::Result<()> {
    let chosen = directives(|name| std::env::var(name).ok(), default);
    let filter = EnvFilter::builder()
        .parse(&chosen)
        .map_err(|e| anyhow::anyhow!("{LOG_VAR} / RUST_LOG `{chosen}`: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Pretty => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    // Only a second installation fails (tests that call `cli::run` twice): keep the first.
    let _ = installed;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(vars: &[(&str, &str)], default: &str, expected: &str) {
        let got = directives(
            |name| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            },
            default,
        );
        assert_eq!(got, expected, "{vars:?}");
    }

    #[test]
    fn codeai_log_comes_before_rust_log_and_the_default_last() {
        check(&[], "info", "info");
        check(&[("RUST_LOG", "debug")], "info", "debug");
        check(
            &[("CODEAI_LOG", "warn"), ("RUST_LOG", "debug")],
            "info",
            "warn",
        );
        check(
            &[("CODEAI_LOG", " "), ("RUST_LOG", "debug")],
            "info",
            "debug",
        );
        check(&[("CODEAI_LOG", ""), ("RUST_LOG", "")], "warn", "warn");
    }

    #[test]
    fn bad_directives_are_refused() {
        assert!(EnvFilter::builder().parse("codeai_host=loud").is_err());
        assert!(EnvFilter::builder().parse("warn,codeai_host=debug").is_ok());
    }
}
