//! The `data` interface: the job's queries on its entities, run by
//! [`crate::store::query::EntityQueries`] on the generated WIT types as the guest sent them;
//! what the host holds for the guest (the rows of a `select`, the parsed rows of an `insert`)
//! is charged to the execution's budget.

use super::{over, JobCaps};
use crate::runtime::Reservation;
use crate::store::query::{QueryError, Read};
use crate::wasm::{data, CapError};
use serde_json::Value;

fn query_error(e: QueryError) -> CapError {
    match e {
        QueryError::Denied(m) => CapError::Denied(m),
        QueryError::Invalid(m) => CapError::Invalid(m),
        QueryError::Failed(m) => CapError::Failed(m),
    }
}

impl data::Host for JobCaps {
    async fn select(&mut self, query: data::Query) -> Result<String, CapError> {
        let call = format!("`data.select` {}", query.entity);
        self.read(&call, Read::Select(&query)).await
    }

    async fn select_page(&mut self, query: data::Query, offset: u32) -> Result<String, CapError> {
        let call = format!("`data.select-page` {}", query.entity);
        self.read(&call, Read::Page(&query, offset)).await
    }

    async fn aggregate(&mut self, query: data::AggregateQuery) -> Result<String, CapError> {
        let call = format!("`data.aggregate` {}", query.entity);
        self.read(&call, Read::Aggregate(&query)).await
    }

    async fn count(
        &mut self,
        entity: String,
        filter: Option<data::Filter>,
    ) -> Result<u64, CapError> {
        self.data
            .count(&entity, filter.as_ref())
            .await
            .map_err(query_error)
    }

    async fn delete(
        &mut self,
        entity: String,
        filter: Option<data::Filter>,
    ) -> Result<u64, CapError> {
        self.data
            .delete(&entity, filter.as_ref())
            .await
            .map_err(query_error)
    }

    async fn update(
        &mut self,
        entity: String,
        filter: Option<data::Filter>,
        set: Vec<data::Assignment>,
    ) -> Result<u64, CapError> {
        self.data
            .update(&entity, filter.as_ref(), &set)
            .await
            .map_err(query_error)
    }

    async fn insert(&mut self, entity: String, rows: String) -> Result<u64, CapError> {
        let (rows, _held) = self.rows(&rows, &format!("`data.insert` {entity}")).await?;
        self.data
            .insert_parsed(&entity, rows, None)
            .await
            .map_err(query_error)
    }

    async fn upsert(
        &mut self,
        entity: String,
        rows: String,
        keys: Vec<String>,
    ) -> Result<u64, CapError> {
        let (rows, _held) = self.rows(&rows, &format!("`data.upsert` {entity}")).await?;
        self.data
            .insert_parsed(&entity, rows, Some(&keys))
            .await
            .map_err(query_error)
    }

    async fn maintain(
        &mut self,
        op: data::MaintenanceOp,
        entity: Option<String>,
    ) -> Result<String, CapError> {
        self.data
            .maintain(op, entity.as_deref())
            .await
            .map_err(query_error)
    }
}

impl JobCaps {
    /// The rows of a read as a JSON array, charged to the execution's memory budget as they
    /// come (and handed over to the guest's share when they are returned).
    async fn read(&mut self, call: &str, read: Read<'_>) -> Result<String, CapError> {
        let mut held = self.budget.reserve(0, call).map_err(over)?;
        let r = self
            .data
            .read_within(read, &mut |bytes| {
                held.resize(bytes, call)
                    .map_err(|e| QueryError::Failed(e.0))
            })
            .await
            .map_err(query_error);
        let rows = self.within_budget(r).await?;
        self.budget.hand_over(held);
        Ok(rows)
    }

    /// The rows of an insert or upsert, parsed, with what they hold of the execution's memory
    /// budget (the parsed tree can take many times its text; charged as it is built).
    async fn rows(&mut self, rows: &str, call: &str) -> Result<(Value, Reservation), CapError> {
        let mut held = self.budget.reserve(0, call).map_err(over)?;
        let r = self.parse_charged(rows, "the rows", call, &mut held);
        Ok((self.within_budget(r).await?, held))
    }
}
