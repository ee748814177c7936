//! Schedules, durations and retry policies in words, as the DSL spells them: what the commands
//! print and the API shows, and durations read back ([`parse_duration`]) from the commands'
//! and the API's arguments.

use codeai_ir::{Backoff, RetryPolicy, Schedule};

/// A schedule as the DSL spells it: the cron string, `every 30m`, `once at …` or `manual`.
pub(crate) fn schedule(schedule: &Schedule) -> String {
    match schedule {
        Schedule::Cron { expression } => expression.clone(),
        Schedule::Interval { every_ms } => format!("every {}", duration(*every_ms)),
        Schedule::Once { at } => format!("once at {at}"),
        Schedule::Manual => "manual".to_string(),
    }
}

/// A schedule with a human description when there is one to give:
/// `0 6 * * * (at 06:00 every day)`.
pub(crate) fn schedule_described(schedule: &Schedule) -> String {
    match schedule {
        Schedule::Cron { expression } => match codeai_cron::CronExpr::parse(expression) {
            Ok(cron) => format!("{expression} ({})", cron.describe()),
            Err(_) => expression.clone(),
        },
        other => self::schedule(other),
    }
}

/// When a job runs, as the tables of the commands show it: its schedule (described), and
/// `on(Event)` for a job that runs on an event (`manual` only for a job that has neither).
pub(crate) fn runs_when(schedule: &Schedule, trigger: Option<&str>, described: bool) -> String {
    let text = match described {
        true => schedule_described(schedule),
        false => self::schedule(schedule),
    };
    match (schedule, trigger) {
        (_, None) => text,
        (Schedule::Manual, Some(event)) => format!("on({event})"),
        (_, Some(event)) => format!("{text}; on({event})"),
    }
}

/// Milliseconds in the largest DSL unit that divides them exactly: `30m`, `2h`, `1500ms`.
pub(crate) fn duration(ms: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
    ];
    if ms == 0 {
        return "0s".to_string();
    }
    UNITS
        .iter()
        .find(|(size, _)| ms.is_multiple_of(*size))
        .map(|(size, unit)| format!("{}{unit}", ms / size))
        .unwrap_or_else(|| format!("{ms}ms"))
}

/// A duration as the DSL spells one: digits and a unit `ms`, `s`, `m`, `h` or `d` (`250ms`,
/// `90s`, `10m`, `2h`, `1d`). The error says what is wrong with `text`.
pub(crate) fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit (ms, s, m, h or d)"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a number"))?;
    let scale: u64 = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}` (ms, s, m, h or d)"
            ))
        }
    };
    let ms = n
        .checked_mul(scale)
        .ok_or_else(|| format!("`{text}` is too long"))?;
    Ok(std::time::Duration::from_millis(ms))
}

/// `3 retries, exponential backoff from 100ms`, `no retries`.
pub(crate) fn retry(policy: &RetryPolicy) -> String {
    let count = match policy.max_retries {
        0 => return "no retries".to_string(),
        1 => "1 retry".to_string(),
        n => format!("{n} retries"),
    };
    let backoff = match &policy.backoff {
        Backoff::Fixed { delay_ms } => format!("fixed delay {}", duration(*delay_ms)),
        Backoff::Exponential { base_ms } => {
            format!("exponential backoff from {}", duration(*base_ms))
        }
        Backoff::Custom { delays_ms } => {
            let delays: Vec<String> = delays_ms.iter().map(|d| duration(*d)).collect();
            format!("delays [{}]", delays.join(", "))
        }
    };
    format!("{count}, {backoff}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_back_as_written() {
        for ms in [
            250, 1_500, 30_000, 1_800_000, 5_400_000, 7_200_000, 86_400_000,
        ] {
            let text = duration(ms);
            assert_eq!(
                parse_duration(&text),
                Ok(std::time::Duration::from_millis(ms))
            );
        }
        assert_eq!(
            parse_duration(" 10 m "),
            Ok(std::time::Duration::from_secs(600))
        );
        for bad in ["", "10", "m", "10w", "-5s", "1.5h", "99999999999999999999d"] {
            let e = parse_duration(bad).expect_err(bad);
            assert!(!e.is_empty(), "{bad}");
        }
    }

    #[test]
    fn durations_use_the_largest_exact_unit() {
        for (ms, expected) in [
            (0, "0s"),
            (1_500, "1500ms"),
            (30_000, "30s"),
            (1_800_000, "30m"),
            (5_400_000, "90m"),
            (7_200_000, "2h"),
            (86_400_000, "1d"),
        ] {
            assert_eq!(duration(ms), expected, "{ms}");
        }
    }

    #[test]
    fn schedules_read_like_the_dsl() {
        let cron = Schedule::Cron {
            expression: "0 6 * * *".into(),
        };
        assert_eq!(schedule(&cron), "0 6 * * *");
        assert_eq!(
            schedule(&Schedule::Interval {
                every_ms: 1_800_000
            }),
            "every 30m"
        );
        assert_eq!(
            schedule(&Schedule::Once {
                at: "2026-01-01T00:00:00Z".into()
            }),
            "once at 2026-01-01T00:00:00Z"
        );
        assert_eq!(schedule(&Schedule::Manual), "manual");
        assert_eq!(runs_when(&Schedule::Manual, Some("Paid"), true), "on(Paid)");
        let hourly = Schedule::Interval {
            every_ms: 3_600_000,
        };
        assert_eq!(
            runs_when(&hourly, Some("Paid"), false),
            "every 1h; on(Paid)"
        );
        assert_eq!(runs_when(&Schedule::Manual, None, false), "manual");
        let described = schedule_described(&cron);
        assert!(described.starts_with("0 6 * * * ("), "{described}");
        assert!(described.contains("06:00"), "{described}");
    }

    #[test]
    fn retry_policies_are_spelled_out() {
        let policy = |max_retries, backoff| RetryPolicy {
            max_retries,
            backoff,
        };
        assert_eq!(
            retry(&policy(0, Backoff::Fixed { delay_ms: 0 })),
            "no retries"
        );
        assert_eq!(
            retry(&policy(3, Backoff::Exponential { base_ms: 100 })),
            "3 retries, exponential backoff from 100ms"
        );
        assert_eq!(
            retry(&policy(1, Backoff::Fixed { delay_ms: 60_000 })),
            "1 retry, fixed delay 1m"
        );
        assert_eq!(
            retry(&policy(
                2,
                Backoff::Custom {
                    delays_ms: vec![60_000, 300_000]
                }
            )),
            "2 retries, delays [1m, 5m]"
        );
    }
}
