//! Jobs that run on events (`trigger: on(E)`): while this process leads, [`run`] hands each new
//! event to the enabled jobs of its tenant that wait for it, one run each with the event's data
//! as the input, recorded with the event's id; then marks the event dispatched.
//!
//! Delivery is at least once and runs once: a run's execution id is derived from the event and
//! the job (UUID v5), so an event dispatched again after a crash finds its runs made and makes
//! no second one. A chain of events and triggered runs (across files, where the compiler cannot
//! see it) stops at [`MAX_DEPTH`]: an event that deep sets nothing off, with a warning. Fan-out
//! is bounded too: an execution emits at most `caps::events::MAX_PER_EXECUTION` events, and a
//! tenant with [`MAX_OPEN_PER_TENANT`] executions open gets no triggered run until some end
//! (its events wait), while other tenants' events go on.

use super::pause;
use crate::api::ApiState;
use crate::cluster::Leadership;
use crate::domain::jobs::RunNow;
use crate::store::{events, executions};
use chrono::Utc;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How often the dispatcher looks for new events.
pub const EVERY: Duration = Duration::from_millis(200);

/// An event after this many triggered runs in a row sets nothing off.
pub const MAX_DEPTH: i64 = 8;

/// Events taken per round, and of one tenant.
const BATCH: i64 = 100;
const PER_TENANT: i64 = 20;

/// A tenant with this many executions open (pending, retrying, running) gets no runs set off by
/// events until some end: its events wait (back-pressure, nothing is lost).
pub const MAX_OPEN_PER_TENANT: i64 = 100;

/// Dispatches new events while this process leads, until `stop`.
pub async fn run(state: Arc<ApiState>, leadership: Leadership, stop: CancellationToken) {
    while pause(&stop, EVERY).await {
        if !leadership.is_leader() {
            continue;
        }
        // Rounds follow one another while they dispatch something: a backlog is worked off
        // at once, not a round per pause.
        loop {
            match dispatch(&state).await {
                Ok(0) => break,
                Ok(_) if stop.is_cancelled() => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("dispatching events to triggered jobs failed: {e:#}");
                    break;
                }
            }
        }
    }
}

/// The execution id of `job`'s run for `event`: the same each time the event is dispatched.
pub fn run_id(event: &str, job_id: &str) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("{event}/{job_id}").as_bytes())
}

/// One round: the oldest undispatched events (at most [`PER_TENANT`] of a tenant), each to its
/// jobs, except a tenant's with [`MAX_OPEN_PER_TENANT`] executions open; how many were
/// dispatched.
pub async fn dispatch(state: &ApiState) -> anyhow::Result<usize> {
    let pending = events::undispatched(&state.db, PER_TENANT, BATCH).await?;
    if pending.is_empty() {
        return Ok(0);
    }
    let jobs = state.scheduler.jobs();
    let mut open: HashMap<String, i64> = HashMap::new();
    let mut dispatched = 0;
    for event in &pending {
        let waiting: Vec<_> = jobs
            .iter()
            .filter(|j| {
                j.enabled
                    && j.tenant == event.tenant
                    && j.manifest.trigger.as_deref() == Some(event.name.as_str())
            })
            .collect();
        if !waiting.is_empty() {
            let runs = match open.get(&event.tenant) {
                Some(n) => *n,
                None => {
                    let n = events::open_runs(&state.db, &event.tenant).await?;
                    open.insert(event.tenant.clone(), n);
                    n
                }
            };
            if runs >= MAX_OPEN_PER_TENANT {
                // The tenant has many runs open: this event waits for some to end.
                continue;
            }
        }
        let depth = events::depth_after(&state.db, event.execution_id.as_deref()).await?;
        for job in waiting {
            if depth >= MAX_DEPTH {
                tracing::warn!(
                    event = %event.id, name = %event.name, job = %job.manifest.name,
                    tenant = %event.tenant, depth,
                    "event not dispatched: {MAX_DEPTH} triggered runs in a row led to it"
                );
                continue;
            }
            let id = run_id(&event.id, &job.job_id);
            if executions::get(&state.db, id, None).await?.is_some() {
                continue;
            }
            let input = match serde_json::from_str::<serde_json::Value>(&event.payload) {
                Ok(v @ serde_json::Value::Object(_)) => v.to_string(),
                _ => "{}".to_string(),
            };
            let now = Utc::now();
            let made = state
                .jobs()
                .trigger_at(
                    &job.job_id,
                    RunNow {
                        input: &input,
                        trigger: "event",
                        now,
                        run_after: now,
                        id,
                        traceparent: None,
                        event_id: Some(&event.id),
                    },
                )
                .await?;
            if made.is_some() {
                *open.entry(event.tenant.clone()).or_default() += 1;
                tracing::info!(
                    event = %event.id, name = %event.name, job = %job.manifest.name,
                    tenant = %event.tenant, execution = %id, "event set off a run"
                );
            }
        }
        events::dispatched(&state.db, &event.id, depth, Utc::now()).await?;
        dispatched += 1;
    }
    Ok(dispatched)
}
