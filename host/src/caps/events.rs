//! The `events` interface: a declared event and its payload (a JSON object) written to the
//! platform's events.

use super::{db_error, over, JobCaps};

/// At most this many events per execution: each may set off runs (`trigger: on(E)`), so a job
/// cannot fan out without bound.
pub const MAX_PER_EXECUTION: usize = 100;
use crate::store::platform as store;
use crate::wasm::{events, CapError};

impl events::Host for JobCaps {
    async fn emit(&mut self, name: String, payload: String) -> Result<(), CapError> {
        if !self.ctx.manifest.events.iter().any(|e| e.name == name) {
            return Err(CapError::Denied(format!(
                "event `{name}` is not declared by this job"
            )));
        }
        if self.emitted >= MAX_PER_EXECUTION {
            return Err(CapError::Invalid(format!(
                "at most {MAX_PER_EXECUTION} events per execution"
            )));
        }
        let call = format!("`events.emit` {name}");
        let mut held = self.budget.reserve(0, &call).map_err(over)?;
        let r = self.parse_charged(&payload, "the event payload", &call, &mut held);
        let payload = self.within_budget(r).await?;
        if !payload.is_object() {
            return Err(CapError::Invalid(
                "an event payload must be a JSON object".into(),
            ));
        }
        store::insert_event(
            self.services.db(),
            &self.ctx.tenant,
            &self.ctx.manifest.name,
            Some(self.ctx.execution_id),
            &name,
            &payload,
        )
        .await
        .map_err(db_error("events"))?;
        self.emitted += 1;
        Ok(())
    }
}
