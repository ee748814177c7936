//! The platform's use cases, between their callers (the HTTP API, the background loops, the
//! workers) and storage: a caller parses its input, calls one function here, and shapes the
//! answer. Each module owns one lifecycle.
//!
//! - [`executions`]: an execution's moves between its states (cancel, retry, an attempt to
//!   be retried); the states themselves are [`crate::store::ExecutionStatus`].
//! - [`jobs`]: a registered job's use cases (run now, pause, resume, reschedule, delete).

pub mod executions;
pub mod jobs;
