//! The states of an execution record (`job_executions.status`) and the moves between them.
//! Execution states are spelled here and nowhere else; [`crate::domain::executions`] moves
//! executions between them.

use std::fmt;
use std::str::FromStr;

/// Declares [`ExecutionStatus`] with [`ExecutionStatus::ALL`] and [`ExecutionStatus::as_str`]
/// from one list: each state and its word once.
macro_rules! states {
    ($( $(#[$doc:meta])* $state:ident => $word:literal, )*) => {
        /// Where an execution is in its life, as its record says.
        ///
        /// ```text
        /// pending ──▶ running ──▶ completed | skipped | failed | timed_out | cancelled
        ///    │           │                  | fuel_exhausted | memory_exceeded | trapped
        ///    │           └──▶ retrying ──▶ running
        ///    └──▶ cancelled
        /// failed, timed_out, …, cancelled ──(retry)──▶ pending
        /// ```
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum ExecutionStatus {
            $( $(#[$doc])* #[serde(rename = $word)] $state, )*
        }

        impl ExecutionStatus {
            pub const ALL: [ExecutionStatus; [$($word),*].len()] = [$(ExecutionStatus::$state),*];

            /// As stored and as the API shows it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( ExecutionStatus::$state => $word, )*
                }
            }
        }
    };
}

states! {
    /// Queued and not started (a manual run, a retry asked for through the API).
    Pending => "pending",
    /// An attempt is running.
    Running => "running",
    /// An attempt failed; the next one waits for its time on the queue.
    Retrying => "retrying",
    /// `run` returned `completed`.
    Completed => "completed",
    /// `run` returned `skipped` (an overlap policy, a guard).
    Skipped => "skipped",
    /// The job's error, a capability denial, or a component that could not run.
    Failed => "failed",
    /// Over its wall-clock budget.
    TimedOut => "timed_out",
    /// Cancelled by a user (or its job was deleted).
    Cancelled => "cancelled",
    /// Over its fuel budget.
    FuelExhausted => "fuel_exhausted",
    /// Over its memory cap (guest memory or what the host held for it).
    MemoryExceeded => "memory_exceeded",
    /// A trap: a guest panic, a stack overflow, an out-of-bounds access.
    Trapped => "trapped",
}

use ExecutionStatus::*;

impl ExecutionStatus {
    /// The states of an execution that ended badly (what alerts and failure counts see).
    pub const FAILURES: [ExecutionStatus; 5] =
        [Failed, TimedOut, FuelExhausted, MemoryExceeded, Trapped];

    /// Whether the execution has ended (nothing of it runs or waits to run).
    pub fn is_final(self) -> bool {
        !matches!(self, Pending | Running | Retrying)
    }

    /// Whether it ended badly.
    pub fn is_failure(self) -> bool {
        Self::FAILURES.contains(&self)
    }

    /// Whether it ended well (`completed`, or `skipped` on purpose).
    pub fn is_success(self) -> bool {
        matches!(self, Completed | Skipped)
    }

    /// The states that `keep` selects, as [`Self::sql_list`] writes them.
    pub fn sql_list_of(keep: fn(ExecutionStatus) -> bool) -> String {
        let states: Vec<ExecutionStatus> = Self::ALL.into_iter().filter(|s| keep(*s)).collect();
        Self::sql_list(&states)
    }

    /// `'a', 'b'` for an SQL `IN (…)` list of these states (they are this enum's own words,
    /// never input, so they are safe to inline).
    pub fn sql_list(states: &[ExecutionStatus]) -> String {
        states
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that is not an execution state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an execution status")]
pub struct UnknownStatus(pub String);

impl FromStr for ExecutionStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_as_itself() {
        for s in ExecutionStatus::ALL {
            assert_eq!(s.as_str().parse::<ExecutionStatus>(), Ok(s));
        }
        assert!("active".parse::<ExecutionStatus>().is_err());
    }

    #[test]
    fn the_three_kinds_of_state_do_not_overlap() {
        for s in ExecutionStatus::ALL {
            let kinds = [
                !s.is_final(),
                s.is_success(),
                s.is_failure(),
                s == Cancelled,
            ];
            assert_eq!(kinds.iter().filter(|k| **k).count(), 1, "{s}");
        }
        assert_eq!(
            ExecutionStatus::sql_list(&[Failed, TimedOut]),
            "'failed', 'timed_out'"
        );
    }
}
