//! Evaluates the alert conditions ([`crate::alerts`]) every [`AlertConfig::every`] while this
//! process leads (one evaluator per deployment).
//!
//! [`AlertConfig::every`]: crate::alerts::AlertConfig::every

use super::pause;
use crate::alerts::Alerts;
use crate::cluster::Leadership;
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Evaluates the alerts while leading, until `stop`.
pub async fn run(alerts: Arc<Alerts>, leadership: Leadership, stop: CancellationToken) {
    loop {
        let wait = if leadership.is_leader() {
            if let Err(e) = alerts.evaluate(Utc::now()).await {
                tracing::warn!("alert evaluation failed: {e:#}");
            }
            alerts.config().every
        } else {
            Duration::from_millis(500)
        };
        if !pause(&stop, wait).await {
            return;
        }
    }
}
