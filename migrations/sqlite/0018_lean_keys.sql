-- Fewer index entries for each job run (issue 19): what the embedded default writes per job is
-- what bounds its throughput, and most of it is B-tree entries (BENCHMARKS.md, session 14).
--
-- `job_executions` is keyed by `id` alone. Its primary key on `(tenant_id, id)` was a second
-- unique entry beside `job_executions_id_idx` for every execution, which no query needed: every
-- lookup by id goes through `job_executions_id_idx`, every listing of a tenant's executions
-- through `job_executions_tenant_idx`. SQLite cannot drop a primary key, so the table is built
-- again: its rows copied before its triggers exist (the /metrics totals already count them),
-- then its indexes and the triggers of 0016 as they were. This copies every execution, logs
-- included, in the first start after the upgrade: measured on the project's 2-vCPU machine,
-- 200,000 executions of ~550 bytes (a 109 MB file) took 1.6 s, and the write-ahead log grew to
-- 185 MB before `store::migrate` truncated it. So it needs free disk of up to about three times
-- the table while it runs; after it, the file keeps the old table's pages as free pages, which
-- later writes reuse (`VACUUM` gives them back). Deleting old executions first (a job that
-- archives them, as the example's does) shortens all of it.
CREATE TABLE job_executions_keyed_by_id (
    id           TEXT NOT NULL,
    tenant_id    TEXT NOT NULL,
    job_id       TEXT NOT NULL,
    job_name     TEXT,
    job_version  INTEGER,
    -- queued, running, completed, skipped, failed, timed_out, cancelled, ...
    status       TEXT NOT NULL,
    trigger      TEXT,
    queue        TEXT,
    input        TEXT,
    output       TEXT,
    error        TEXT,
    step         TEXT,
    attempt      INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 1,
    scheduled_at TEXT,
    started_at   TEXT,
    finished_at  TEXT,
    duration_ms  INTEGER,
    fuel_used    INTEGER,
    -- JSON: the log lines and the capability calls with their timings.
    log          TEXT,
    calls        TEXT,
    created_at   TEXT,
    traceparent  TEXT,
    event_id     TEXT
);
INSERT INTO job_executions_keyed_by_id
    (id, tenant_id, job_id, job_name, job_version, status, trigger, queue, input, output, error,
     step, attempt, max_attempts, scheduled_at, started_at, finished_at, duration_ms, fuel_used,
     log, calls, created_at, traceparent, event_id)
SELECT id, tenant_id, job_id, job_name, job_version, status, trigger, queue, input, output, error,
       step, attempt, max_attempts, scheduled_at, started_at, finished_at, duration_ms, fuel_used,
       log, calls, created_at, traceparent, event_id
FROM job_executions;
DROP TABLE job_executions;
ALTER TABLE job_executions_keyed_by_id RENAME TO job_executions;
CREATE UNIQUE INDEX job_executions_id_idx ON job_executions (id);
CREATE INDEX job_executions_job_idx ON job_executions (job_id, created_at);
CREATE INDEX job_executions_tenant_idx ON job_executions (tenant_id, created_at);
CREATE INDEX job_executions_finished_idx ON job_executions (finished_at);
CREATE INDEX job_executions_open_idx ON job_executions (status)
    WHERE status IN ('pending', 'queued', 'running', 'retrying');

-- A task's entry by job is kept while it waits or runs: the overlap checks, a deleted job's
-- cancellations and the versions in use ask for those only. Its finish takes the entry out
-- instead of moving it.
DROP INDEX tasks_job_state_idx;
CREATE INDEX tasks_job_state_idx ON tasks (job_id, state)
    WHERE state = 'pending' OR state = 'active';

-- Only a schedule's fires have a fire instant to be unique on; a run request, a retry of a dead
-- task or an event's run has none, and needs no entry.
DROP INDEX tasks_fire_idx;
CREATE UNIQUE INDEX tasks_fire_idx ON tasks (job_id, fire_at) WHERE fire_at IS NOT NULL;

-- The /metrics triggers of 0016, on the table built again.
CREATE TRIGGER metric_executions_insert AFTER INSERT ON job_executions BEGIN
    INSERT INTO metric_executions (job_name, status, queue, n, retries)
    VALUES (COALESCE(NEW.job_name, ''), NEW.status, COALESCE(NEW.queue, ''), 1,
            MAX(NEW.attempt - 1, 0))
    ON CONFLICT (job_name, status, queue, shard)
    DO UPDATE SET n = n + excluded.n, retries = retries + excluded.retries;
    INSERT INTO metric_durations (job_id, job_name, le_ms, n, total_ms)
    SELECT NEW.job_id, COALESCE(NEW.job_name, ''), CASE
            WHEN NEW.duration_ms <= 5 THEN 5 WHEN NEW.duration_ms <= 10 THEN 10 WHEN NEW.duration_ms <= 25 THEN 25 WHEN NEW.duration_ms <= 50 THEN 50
            WHEN NEW.duration_ms <= 100 THEN 100 WHEN NEW.duration_ms <= 250 THEN 250 WHEN NEW.duration_ms <= 500 THEN 500 WHEN NEW.duration_ms <= 1000 THEN 1000
            WHEN NEW.duration_ms <= 2500 THEN 2500 WHEN NEW.duration_ms <= 5000 THEN 5000 WHEN NEW.duration_ms <= 10000 THEN 10000 WHEN NEW.duration_ms <= 30000 THEN 30000
            WHEN NEW.duration_ms <= 60000 THEN 60000 WHEN NEW.duration_ms <= 300000 THEN 300000
            ELSE 0 END, 1, NEW.duration_ms
    WHERE NEW.duration_ms IS NOT NULL AND NEW.started_at IS NOT NULL
    ON CONFLICT (job_id, job_name, le_ms, shard)
    DO UPDATE SET n = n + excluded.n, total_ms = total_ms + excluded.total_ms;
END;

CREATE TRIGGER metric_executions_delete AFTER DELETE ON job_executions BEGIN
    INSERT INTO metric_executions (job_name, status, queue, n, retries)
    VALUES (COALESCE(OLD.job_name, ''), OLD.status, COALESCE(OLD.queue, ''), -1,
            -MAX(OLD.attempt - 1, 0))
    ON CONFLICT (job_name, status, queue, shard)
    DO UPDATE SET n = n + excluded.n, retries = retries + excluded.retries;
    INSERT INTO metric_durations (job_id, job_name, le_ms, n, total_ms)
    SELECT OLD.job_id, COALESCE(OLD.job_name, ''), CASE
            WHEN OLD.duration_ms <= 5 THEN 5 WHEN OLD.duration_ms <= 10 THEN 10 WHEN OLD.duration_ms <= 25 THEN 25 WHEN OLD.duration_ms <= 50 THEN 50
            WHEN OLD.duration_ms <= 100 THEN 100 WHEN OLD.duration_ms <= 250 THEN 250 WHEN OLD.duration_ms <= 500 THEN 500 WHEN OLD.duration_ms <= 1000 THEN 1000
            WHEN OLD.duration_ms <= 2500 THEN 2500 WHEN OLD.duration_ms <= 5000 THEN 5000 WHEN OLD.duration_ms <= 10000 THEN 10000 WHEN OLD.duration_ms <= 30000 THEN 30000
            WHEN OLD.duration_ms <= 60000 THEN 60000 WHEN OLD.duration_ms <= 300000 THEN 300000
            ELSE 0 END, -1, -OLD.duration_ms
    WHERE OLD.duration_ms IS NOT NULL AND OLD.started_at IS NOT NULL
    ON CONFLICT (job_id, job_name, le_ms, shard)
    DO UPDATE SET n = n + excluded.n, total_ms = total_ms + excluded.total_ms;
END;

-- An update takes the old row away and adds the new one.
CREATE TRIGGER metric_executions_update
AFTER UPDATE OF job_id, job_name, status, queue, attempt, started_at, duration_ms ON job_executions
BEGIN
    INSERT INTO metric_executions (job_name, status, queue, n, retries)
    VALUES (COALESCE(OLD.job_name, ''), OLD.status, COALESCE(OLD.queue, ''), -1,
            -MAX(OLD.attempt - 1, 0))
    ON CONFLICT (job_name, status, queue, shard)
    DO UPDATE SET n = n + excluded.n, retries = retries + excluded.retries;
    INSERT INTO metric_durations (job_id, job_name, le_ms, n, total_ms)
    SELECT OLD.job_id, COALESCE(OLD.job_name, ''), CASE
            WHEN OLD.duration_ms <= 5 THEN 5 WHEN OLD.duration_ms <= 10 THEN 10 WHEN OLD.duration_ms <= 25 THEN 25 WHEN OLD.duration_ms <= 50 THEN 50
            WHEN OLD.duration_ms <= 100 THEN 100 WHEN OLD.duration_ms <= 250 THEN 250 WHEN OLD.duration_ms <= 500 THEN 500 WHEN OLD.duration_ms <= 1000 THEN 1000
            WHEN OLD.duration_ms <= 2500 THEN 2500 WHEN OLD.duration_ms <= 5000 THEN 5000 WHEN OLD.duration_ms <= 10000 THEN 10000 WHEN OLD.duration_ms <= 30000 THEN 30000
            WHEN OLD.duration_ms <= 60000 THEN 60000 WHEN OLD.duration_ms <= 300000 THEN 300000
            ELSE 0 END, -1, -OLD.duration_ms
    WHERE OLD.duration_ms IS NOT NULL AND OLD.started_at IS NOT NULL
    ON CONFLICT (job_id, job_name, le_ms, shard)
    DO UPDATE SET n = n + excluded.n, total_ms = total_ms + excluded.total_ms;
    INSERT INTO metric_executions (job_name, status, queue, n, retries)
    VALUES (COALESCE(NEW.job_name, ''), NEW.status, COALESCE(NEW.queue, ''), 1,
            MAX(NEW.attempt - 1, 0))
    ON CONFLICT (job_name, status, queue, shard)
    DO UPDATE SET n = n + excluded.n, retries = retries + excluded.retries;
    INSERT INTO metric_durations (job_id, job_name, le_ms, n, total_ms)
    SELECT NEW.job_id, COALESCE(NEW.job_name, ''), CASE
            WHEN NEW.duration_ms <= 5 THEN 5 WHEN NEW.duration_ms <= 10 THEN 10 WHEN NEW.duration_ms <= 25 THEN 25 WHEN NEW.duration_ms <= 50 THEN 50
            WHEN NEW.duration_ms <= 100 THEN 100 WHEN NEW.duration_ms <= 250 THEN 250 WHEN NEW.duration_ms <= 500 THEN 500 WHEN NEW.duration_ms <= 1000 THEN 1000
            WHEN NEW.duration_ms <= 2500 THEN 2500 WHEN NEW.duration_ms <= 5000 THEN 5000 WHEN NEW.duration_ms <= 10000 THEN 10000 WHEN NEW.duration_ms <= 30000 THEN 30000
            WHEN NEW.duration_ms <= 60000 THEN 60000 WHEN NEW.duration_ms <= 300000 THEN 300000
            ELSE 0 END, 1, NEW.duration_ms
    WHERE NEW.duration_ms IS NOT NULL AND NEW.started_at IS NOT NULL
    ON CONFLICT (job_id, job_name, le_ms, shard)
    DO UPDATE SET n = n + excluded.n, total_ms = total_ms + excluded.total_ms;
END;
