//! The `state` interface: a job's bookmarks, small JSON values under short keys, kept between
//! executions.

use super::{db_error, JobCaps};
use crate::store::platform as store;
use crate::wasm::{state, CapError};
use serde_json::Value;

fn parse_json(text: &str, what: &str) -> Result<Value, CapError> {
    serde_json::from_str(text).map_err(|e| CapError::Invalid(format!("{what} is not JSON: {e}")))
}

/// Keys and values of the `state` capability are bounded: it is for bookmarks, not storage.
const MAX_STATE_KEY: usize = 200;
const MAX_STATE_VALUE: usize = 64 * 1024;

impl state::Host for JobCaps {
    async fn get(&mut self, key: String) -> Option<String> {
        match store::state_get(
            self.services.db(),
            &self.ctx.tenant,
            &self.ctx.manifest.name,
            &key,
        )
        .await
        {
            Ok(value) => value,
            Err(e) => {
                tracing::warn!(job = %self.job(), "state.get {key}: {e}");
                None
            }
        }
    }

    async fn set(&mut self, key: String, value: String) -> Result<(), CapError> {
        if key.is_empty() || key.len() > MAX_STATE_KEY {
            return Err(CapError::Invalid(format!(
                "a state key is 1 to {MAX_STATE_KEY} bytes"
            )));
        }
        if value.len() > MAX_STATE_VALUE {
            return Err(CapError::Invalid(format!(
                "a state value is at most {MAX_STATE_VALUE} bytes"
            )));
        }
        parse_json(&value, "the state value")?;
        store::state_set(
            self.services.db(),
            &self.ctx.tenant,
            &self.ctx.manifest.name,
            &key,
            &value,
        )
        .await
        .map_err(db_error("state"))
    }
}
