//! The operations the platform defines on its own tables when a job names them as built-in
//! entities ([`codeai_ir::platform::BUILTIN_ENTITIES`]). Reads go through the ordinary `select`
//! and `count` (the tenant's rows, the declared fields); deletes come here:
//!
//! - `JobExecution`: the tenant's matching executions that have ended (a pending or running one
//!   is never deleted under the worker's feet), with their retried attempts and their finished
//!   queue tasks, in one transaction;
//! - `Report`: the tenant's matching reports, each file removed from the path the platform
//!   computes from the report's id ([`report_path`]), then the rows.

use super::{failed, Entity, EntityQueries, Filter, QueryError};
use crate::store::platform::{remove_report, RemoveReportError};
use crate::store::rows::{execute_each, fetch_all, RowExt as _};
use crate::store::sql::{Param, Stmt};
use crate::store::ExecutionStatus;
use codeai_ir::platform::{BuiltinDelete, BuiltinEntity};
use std::sync::LazyLock;
use uuid::Uuid;

/// The statuses of an execution that has ended.
static ENDED: LazyLock<String> =
    LazyLock::new(|| ExecutionStatus::sql_list_of(ExecutionStatus::is_final));

/// Reports one `delete` removes at most (the rest are left for the next run).
const MAX_REPORTS_PER_DELETE: u32 = 10_000;

impl EntityQueries {
    pub(super) async fn delete_builtin(
        &self,
        entity: &Entity,
        builtin: &BuiltinEntity,
        filter: Option<&Filter>,
    ) -> Result<u64, QueryError> {
        match builtin.delete {
            BuiltinDelete::FinishedExecutions => self.delete_executions(entity, filter).await,
            BuiltinDelete::ReportsAndFiles => self.delete_reports(entity, filter).await,
        }
    }

    async fn delete_executions(
        &self,
        entity: &Entity,
        filter: Option<&Filter>,
    ) -> Result<u64, QueryError> {
        let mut attempts = Stmt::default();
        attempts.sql("DELETE FROM execution_attempts WHERE tenant_id = ");
        attempts.bind(Param::Text(self.tenant().to_string()));
        attempts.sql(" AND execution_id IN (SELECT CAST(id AS TEXT) FROM job_executions");
        self.where_clause(entity, filter, &mut attempts)?;
        attempts.sql(format!(" AND status IN ({}))", *ENDED));
        // The finished tasks of those executions go too (the SQL queue keeps them; Redis expires
        // them after a week), or the API would still show the execution from its task.
        let mut tasks = Stmt::default();
        tasks.sql("DELETE FROM tasks WHERE tenant_id = ");
        tasks.bind(Param::Text(self.tenant().to_string()));
        tasks.sql(
            " AND state IN ('done', 'dead') AND id IN (SELECT CAST(id AS TEXT) FROM job_executions",
        );
        self.where_clause(entity, filter, &mut tasks)?;
        tasks.sql(format!(" AND status IN ({}))", *ENDED));
        let mut executions = Stmt::default();
        executions.sql("DELETE FROM job_executions");
        self.where_clause(entity, filter, &mut executions)?;
        executions.sql(format!(" AND status IN ({})", *ENDED));
        let counts = execute_each(&self.db, &[attempts, tasks, executions])
            .await
            .map_err(failed)?;
        Ok(counts.last().copied().unwrap_or(0))
    }

    async fn delete_reports(
        &self,
        entity: &Entity,
        filter: Option<&Filter>,
    ) -> Result<u64, QueryError> {
        let Some(dir) = &self.report_dir else {
            return Err(QueryError::Denied(
                "reports can only be deleted where the report store is configured".into(),
            ));
        };
        let mut select = Stmt::default();
        select.sql("SELECT id FROM reports");
        self.where_clause(entity, filter, &mut select)?;
        select.sql(" LIMIT ");
        select.bind(Param::Int(i64::from(MAX_REPORTS_PER_DELETE)));
        let ids: Vec<Uuid> = fetch_all(&self.db, &select)
            .await
            .map_err(failed)?
            .iter()
            .filter_map(|row| row.text("id").and_then(|id| Uuid::parse_str(&id).ok()))
            .collect();
        let mut deleted = 0;
        for id in ids {
            match remove_report(&self.db, dir, self.tenant(), id).await {
                Ok(true) => deleted += 1,
                Ok(false) => {}
                Err(RemoveReportError::Db(e)) => return Err(failed(e)),
                Err(e) => return Err(QueryError::Failed(e.to_string())),
            }
        }
        Ok(deleted)
    }
}
