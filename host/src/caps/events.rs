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
        if let Some(decl) = self.ctx.manifest.events.iter().find(|e| e.name == name) {
            fits(decl, &payload).map_err(CapError::Invalid)?;
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

/// A payload against its event's declaration: every declared field, of its type, and no other
/// (what a job triggered on the event reads as its input, so a bad one fails here, at the emit).
fn fits(decl: &codeai_ir::EventDecl, payload: &serde_json::Value) -> Result<(), String> {
    use codeai_ir::input::InputType;
    use codeai_ir::FieldType;
    let serde_json::Value::Object(fields) = payload else {
        return Err("an event payload must be a JSON object".into());
    };
    for key in fields.keys() {
        if !decl.fields.iter().any(|f| &f.name == key) {
            return Err(format!("event `{}` has no field `{key}`", decl.name));
        }
    }
    for field in &decl.fields {
        let Some(value) = fields.get(&field.name) else {
            return Err(format!(
                "event `{}`: field `{}` ({}) is missing",
                decl.name,
                field.name,
                field.ty.name()
            ));
        };
        let ty = match field.ty {
            FieldType::String | FieldType::Uuid => InputType::String,
            FieldType::Int => InputType::Int,
            FieldType::Float => InputType::Float,
            FieldType::Bool => InputType::Bool,
            FieldType::Date => InputType::Date,
            FieldType::Datetime => InputType::Datetime,
            FieldType::Json => InputType::Any,
        };
        ty.check(value)
            .map_err(|e| format!("event `{}`: field `{}`: {e}", decl.name, field.name))?;
    }
    Ok(())
}
