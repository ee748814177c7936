//! Bounds every job keeps. The compiler checks them on the source, with a diagnostic; the host
//! checks them again on the manifest of every uploaded component ([`check_manifest`]), since a
//! manifest can be edited after `codeai build`.

use crate::{Manifest, Schedule};

/// The shortest interval of `schedule: every …` (the scheduler fires at most once a second).
pub const MIN_INTERVAL_MS: u64 = 1_000;

/// The longest `timeout:` of a job (a day): an execution holds a worker slot until it ends.
pub const MAX_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1_000;

/// The most calls of a `for_each … parallel: N` in flight at once. The host holds every call to
/// it, whatever a component asks.
pub const MAX_PARALLEL: u32 = 100;

/// The most retries of `retry: N times`.
pub const MAX_RETRIES: u32 = 100;

/// The longest job name, in characters.
pub const MAX_JOB_NAME: usize = 128;

/// A job's name is an identifier of the language: a letter or `_`, then letters, digits and
/// `_` (so it is one path segment of the API, one word in a log line).
pub fn check_job_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
        && name.chars().count() <= MAX_JOB_NAME;
    if valid {
        Ok(())
    } else {
        Err(format!(
            "the job name {name:?} is not an identifier (a letter or `_`, then letters, digits and \
             `_`, at most {MAX_JOB_NAME} characters)"
        ))
    }
}

/// Checks a manifest against the bounds above; the first one it breaks is the error.
pub fn check_manifest(m: &Manifest) -> Result<(), String> {
    check_job_name(&m.name)?;
    if let Schedule::Interval { every_ms } = m.schedule {
        if every_ms < MIN_INTERVAL_MS {
            return Err(format!(
                "the interval of {every_ms} ms is shorter than the shortest, {MIN_INTERVAL_MS} ms"
            ));
        }
    }
    if m.timeout_ms == 0 || m.timeout_ms > MAX_TIMEOUT_MS {
        return Err(format!(
            "the timeout of {} ms is not between 1 ms and {MAX_TIMEOUT_MS} ms (a day)",
            m.timeout_ms
        ));
    }
    if m.retry.max_retries > MAX_RETRIES {
        return Err(format!(
            "{} retries are more than the most, {MAX_RETRIES}",
            m.retry.max_retries
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_are_identifiers() {
        for good in ["Tick", "_t", "Tï", "Job2", &"J".repeat(MAX_JOB_NAME)] {
            assert_eq!(check_job_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "T/ck",
            "../x",
            "T ck",
            "T\nck",
            "T\"k",
            "2x",
            &"J".repeat(129),
        ] {
            assert!(check_job_name(bad).is_err(), "{bad:?}");
        }
    }
}
