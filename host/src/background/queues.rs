//! A worker-only process's view of the queues: the queues the operator's stored jobs declare
//! in their source, which a process that schedules no jobs would otherwise not know.

use super::pause;
use crate::queue::Queue;
use crate::store::platform::DEFAULT_TENANT;
use crate::store::Database;
use codeai_ir::Manifest;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the declarations are read again.
pub const READ_EVERY: Duration = Duration::from_secs(5);

/// Adds the queues the operator's stored jobs declare to the queues `queue` serves.
pub async fn declare_operator_queues(db: &Database, queue: &Queue) -> anyhow::Result<()> {
    for text in crate::store::jobs::current_manifests(db, DEFAULT_TENANT).await? {
        if let Ok(m) = serde_json::from_str::<Manifest>(&text) {
            // An operator's job in a queue it does not declare is the scheduler's to report.
            let _ = queue.admit_job(DEFAULT_TENANT, &m);
        }
    }
    Ok(())
}

/// Reads the declarations every [`READ_EVERY`], until `stop`.
pub async fn run(db: Database, queue: Arc<Queue>, stop: CancellationToken) {
    while pause(&stop, READ_EVERY).await {
        if let Err(e) = declare_operator_queues(&db, &queue).await {
            tracing::warn!("reading the queues jobs declare failed: {e:#}");
        }
    }
}
