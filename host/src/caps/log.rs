//! The `log` interface: the job's log lines to `tracing`, with every secret value this execution
//! resolved redacted (the runtime's gate keeps the execution's own log).

use super::JobCaps;
use crate::wasm::log;

impl log::Host for JobCaps {
    async fn write(&mut self, level: log::Level, message: String) {
        // A value a server echoed back is not written to the host's log either.
        let message = self.redactor().owned(message);
        let job = self.job();
        let execution = self.ctx.execution_id;
        match level {
            log::Level::Trace => tracing::trace!(%job, %execution, "{message}"),
            log::Level::Debug => tracing::debug!(%job, %execution, "{message}"),
            log::Level::Info => tracing::info!(%job, %execution, "{message}"),
            log::Level::Warn => tracing::warn!(%job, %execution, "{message}"),
            log::Level::Error => tracing::error!(%job, %execution, "{message}"),
        }
    }

    /// Step marks are kept by the runtime's gate, for the execution's trace.
    async fn step(&mut self, _name: String) {}
}
