-- Fewer index entries per recorded execution (the worker's hot path writes one row per job).
-- Queries by status look for executions that have not ended (stuck runs, pending runs of a
-- deleted job); finished executions, nearly all rows, need no entry. (On SQLite the primary key
-- on `(tenant_id, id)` stays: changing it means rebuilding the table.)
DROP INDEX job_executions_status_idx;
CREATE INDEX job_executions_open_idx ON job_executions (status)
    WHERE status IN ('pending', 'queued', 'running', 'retrying');
