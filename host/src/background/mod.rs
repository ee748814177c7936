//! The host's background services, one file each, on one shape: an `async fn run(…, stop:
//! CancellationToken)` that loops until `stop` is cancelled, waiting with [`pause`] (which
//! wakes at once on cancellation, so nothing polls a flag), and spawned on a [`Background`],
//! whose [`Background::shutdown`] cancels them all and awaits their ends.
//!
//! | service | runs in | what it does |
//! |---|---|---|
//! | [`schedule`] | API and all-in-one hosts, while leading | fires due jobs; reloads jobs changed elsewhere |
//! | [`reaper`] | every host | puts tasks whose lease expired back on the queue |
//! | [`alerts`] | API and all-in-one hosts, while leading | evaluates the alert conditions |
//! | [`triggers`] | API and all-in-one hosts, while leading | runs the jobs new events set off |
//! | [`election`] | API hosts on Redis | competes for leadership of the scheduler and alerts |
//! | [`heartbeat`] | worker hosts on Redis | keeps this process's worker entry fresh |
//! | [`cancellations`] | worker hosts on Redis | cancels the executions the API asks for |
//! | [`queues`] | worker-only hosts | learns the queues the operator's jobs declare |

pub mod alerts;
pub mod cancellations;
pub mod election;
pub mod heartbeat;
pub mod queues;
pub mod reaper;
pub mod schedule;
pub mod triggers;

use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The background services of a host: started with [`Background::spawn`], stopped together.
#[derive(Debug, Default)]
pub struct Background {
    stop: CancellationToken,
    tracker: TaskTracker,
}

impl Background {
    pub fn new() -> Background {
        Background::default()
    }

    /// Runs a service: `service` is given the token that tells it to stop.
    pub fn spawn<F>(&self, service: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(service(self.stop.child_token()));
    }

    /// Tells every service to stop and waits until each has returned (a service gives up what
    /// it holds on its way out: the leader key, its worker entry), at most `grace`. Returns
    /// whether all of them ended within it.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.stop.cancel();
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
    }
}

/// Waits `period`, or less if `stop` is cancelled meanwhile; false when it was.
pub async fn pause(stop: &CancellationToken, period: Duration) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(period) => !stop.is_cancelled(),
    }
}
