-- Fewer index entries per recorded execution (the worker's hot path writes one row per job).
--
-- 1. The execution's key is its id alone: ids are UUIDs, unique across tenants, and the unique
--    index on `id` already existed beside a primary key on `(tenant_id, id)` that no query needed
--    (every lookup has the id). The unique index becomes the primary key; the old key goes.
ALTER TABLE job_executions DROP CONSTRAINT job_executions_pkey;
ALTER TABLE job_executions ADD CONSTRAINT job_executions_pkey PRIMARY KEY USING INDEX job_executions_id_idx;

-- 2. Queries by status look for executions that have not ended (stuck runs, pending runs of a
--    deleted job); finished executions, nearly all rows, need no entry.
DROP INDEX job_executions_status_idx;
CREATE INDEX job_executions_open_idx ON job_executions (status)
    WHERE status IN ('pending', 'queued', 'running', 'retrying');
