//! `codeai schedule next "EXPR" [--tz ZONE] [--after RFC3339] [-n N]`: the next fire times of a
//! cron expression (or an `every 5m` interval), computed by `codeai-cron` exactly as the
//! scheduler computes them, daylight-saving rules included.

use chrono::{DateTime, SecondsFormat, Utc};
use codeai_cron::{CronExpr, Schedule, Tz};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(super) struct ScheduleArgs {
    #[command(subcommand)]
    pub(super) command: ScheduleCommand,
}

#[derive(Debug, clap::Subcommand)]
pub(super) enum ScheduleCommand {
    /// Print the next fire times of a cron expression, one per line, in UTC.
    Next(NextArgs),
}

#[derive(Debug, clap::Args)]
pub(super) struct NextArgs {
    /// A five-field cron expression or macro (`"30 2 * * *"`, `@daily`), or an interval
    /// (`"every 5m"`, anchored to the Unix epoch).
    pub(super) expression: String,
    /// The IANA time zone whose wall clock the expression is read on.
    #[arg(long, value_name = "ZONE", default_value = "UTC")]
    pub(super) tz: String,
    /// List fire times strictly after this instant (default: now).
    #[arg(long, value_name = "RFC3339", value_parser = parse_instant)]
    pub(super) after: Option<DateTime<Utc>>,
    /// How many fire times to print.
    #[arg(short = 'n', long = "count", value_name = "N", default_value_t = 5)]
    pub(super) count: usize,
}

pub(super) fn run(args: &ScheduleArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        ScheduleCommand::Next(args) => next(args),
    }
}

fn next(args: &NextArgs) -> anyhow::Result<ExitCode> {
    let schedule = match schedule(&args.expression, &args.tz) {
        Ok(schedule) => schedule,
        Err(message) => {
            eprint!("{message}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let after = args.after.unwrap_or_else(Utc::now);
    for at in schedule.iter_after(after).take(args.count) {
        println!("{}", at.to_rfc3339_opts(SecondsFormat::Secs, true));
    }
    Ok(ExitCode::SUCCESS)
}

/// The schedule the arguments describe, or the error text to print (ending in a newline).
fn schedule(expression: &str, zone: &str) -> Result<Schedule, String> {
    let tz: Tz = zone.parse().map_err(|_| {
        format!(
            "error: unknown timezone `{zone}`\n  = hint: use an IANA time zone name such as `UTC`, `America/New_York` or `Europe/Paris`\n"
        )
    })?;
    if let Some(interval) = expression.trim().strip_prefix("every ") {
        return match crate::describe::parse_duration(interval).ok().filter(|d| !d.is_zero()) {
            Some(every) => Ok(Schedule::Every(every)),
            None => Err(format!(
                "error: invalid interval `{}`\n  = hint: write it like `every 30s`, `every 5m`, `every 2h` or `every 1d`\n",
                interval.trim()
            )),
        };
    }
    let expr = CronExpr::parse(expression).map_err(|e| {
        let span = e.span();
        let before = expression.get(..span.start).unwrap_or(expression);
        let under = expression.get(span).unwrap_or_default();
        format!(
            "error: invalid cron expression: {}\n  {}\n  {}{}\n",
            e.message(),
            expression.trim_end(),
            " ".repeat(before.chars().count()),
            "^".repeat(under.chars().count().max(1)),
        )
    })?;
    if !expr.can_fire() {
        return Err(format!(
            "error: cron expression `{expression}` never fires\n  = hint: no month in it has that day of the month\n"
        ));
    }
    Ok(Schedule::Cron { expr, tz })
}

fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("not an RFC 3339 date-time ({e}); write it like 2026-03-07T12:00:00Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cron_error_points_at_the_token() {
        let message = schedule("0 24 * * *", "UTC").unwrap_err();
        assert_eq!(
            message,
            "error: invalid cron expression: hour 24 is out of range 0-23\n  0 24 * * *\n    ^^\n"
        );
        let message = schedule("0 6 * *", "UTC").unwrap_err();
        assert!(
            message.contains("expected 5 fields, found 4\n  0 6 * *\n  ^^^^^^^\n"),
            "{message}"
        );
    }
}
