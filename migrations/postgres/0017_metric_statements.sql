-- The /metrics totals of 0011 and 0016, kept by the same rules, added up once per statement
-- instead of once per row. A row trigger ran a PL/pgSQL call and two upserts for every execution
-- written; the record writer writes a batch of executions in one statement, and every row of it
-- upserted the same few total rows, each upsert making another version of a row this
-- transaction had already updated. On the scale-out bench that was half of the throughput
-- (BENCHMARKS.md, "Scale-out"). Now each statement's transition tables are grouped by total and
-- each total is upserted once.
--
-- Transition tables cannot name columns of an UPDATE, so every UPDATE of job_executions fires
-- the trigger; a statement whose changes add up to nothing upserts nothing.

DROP TRIGGER metric_executions_count ON job_executions;
DROP FUNCTION metric_executions_count();
DROP FUNCTION metric_add(INTEGER, job_executions);

-- One function per kind of statement, each with the same two upserts over that statement's
-- changes: a statement's transition tables can be read only by the trigger function's own
-- statements (not by a function it calls), and only the seven columns the totals use are read
-- from them (not the rows' inputs, outputs and logs), so no statement is too large to count.

-- Rows inserted are added.
CREATE FUNCTION metric_executions_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH changes AS (
        SELECT 1 AS sign, job_id, job_name, status, queue, attempt, started_at, duration_ms FROM new_rows
    ), executions AS (
        INSERT INTO metric_executions AS m (job_name, status, queue, shard, n, retries)
        SELECT COALESCE(job_name, ''), status, COALESCE(queue, ''), pg_backend_pid(),
               SUM(sign), SUM(sign * GREATEST(attempt - 1, 0))
        FROM changes
        GROUP BY 1, 2, 3
        HAVING SUM(sign) <> 0 OR SUM(sign * GREATEST(attempt - 1, 0)) <> 0
        ON CONFLICT (job_name, status, queue, shard)
        DO UPDATE SET n = m.n + excluded.n, retries = m.retries + excluded.retries
    )
    INSERT INTO metric_durations AS d (job_id, job_name, le_ms, shard, n, total_ms)
    SELECT job_id, COALESCE(job_name, ''), metric_duration_bucket(duration_ms), pg_backend_pid(),
           SUM(sign), SUM(sign * duration_ms)
    FROM changes
    WHERE duration_ms IS NOT NULL AND started_at IS NOT NULL
    GROUP BY 1, 2, 3
    HAVING SUM(sign) <> 0 OR SUM(sign * duration_ms) <> 0
    ON CONFLICT (job_id, job_name, le_ms, shard)
    DO UPDATE SET n = d.n + excluded.n, total_ms = d.total_ms + excluded.total_ms;
    RETURN NULL;
END
$$;

-- An update is its old rows' delete and its new rows' insert.
CREATE FUNCTION metric_executions_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH changes AS (
        SELECT -1 AS sign, job_id, job_name, status, queue, attempt, started_at, duration_ms FROM old_rows
        UNION ALL
        SELECT 1 AS sign, job_id, job_name, status, queue, attempt, started_at, duration_ms FROM new_rows
    ), executions AS (
        INSERT INTO metric_executions AS m (job_name, status, queue, shard, n, retries)
        SELECT COALESCE(job_name, ''), status, COALESCE(queue, ''), pg_backend_pid(),
               SUM(sign), SUM(sign * GREATEST(attempt - 1, 0))
        FROM changes
        GROUP BY 1, 2, 3
        HAVING SUM(sign) <> 0 OR SUM(sign * GREATEST(attempt - 1, 0)) <> 0
        ON CONFLICT (job_name, status, queue, shard)
        DO UPDATE SET n = m.n + excluded.n, retries = m.retries + excluded.retries
    )
    INSERT INTO metric_durations AS d (job_id, job_name, le_ms, shard, n, total_ms)
    SELECT job_id, COALESCE(job_name, ''), metric_duration_bucket(duration_ms), pg_backend_pid(),
           SUM(sign), SUM(sign * duration_ms)
    FROM changes
    WHERE duration_ms IS NOT NULL AND started_at IS NOT NULL
    GROUP BY 1, 2, 3
    HAVING SUM(sign) <> 0 OR SUM(sign * duration_ms) <> 0
    ON CONFLICT (job_id, job_name, le_ms, shard)
    DO UPDATE SET n = d.n + excluded.n, total_ms = d.total_ms + excluded.total_ms;
    RETURN NULL;
END
$$;

-- Rows deleted are taken away.
CREATE FUNCTION metric_executions_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH changes AS (
        SELECT -1 AS sign, job_id, job_name, status, queue, attempt, started_at, duration_ms FROM old_rows
    ), executions AS (
        INSERT INTO metric_executions AS m (job_name, status, queue, shard, n, retries)
        SELECT COALESCE(job_name, ''), status, COALESCE(queue, ''), pg_backend_pid(),
               SUM(sign), SUM(sign * GREATEST(attempt - 1, 0))
        FROM changes
        GROUP BY 1, 2, 3
        HAVING SUM(sign) <> 0 OR SUM(sign * GREATEST(attempt - 1, 0)) <> 0
        ON CONFLICT (job_name, status, queue, shard)
        DO UPDATE SET n = m.n + excluded.n, retries = m.retries + excluded.retries
    )
    INSERT INTO metric_durations AS d (job_id, job_name, le_ms, shard, n, total_ms)
    SELECT job_id, COALESCE(job_name, ''), metric_duration_bucket(duration_ms), pg_backend_pid(),
           SUM(sign), SUM(sign * duration_ms)
    FROM changes
    WHERE duration_ms IS NOT NULL AND started_at IS NOT NULL
    GROUP BY 1, 2, 3
    HAVING SUM(sign) <> 0 OR SUM(sign * duration_ms) <> 0
    ON CONFLICT (job_id, job_name, le_ms, shard)
    DO UPDATE SET n = d.n + excluded.n, total_ms = d.total_ms + excluded.total_ms;
    RETURN NULL;
END
$$;

CREATE TRIGGER metric_executions_inserted AFTER INSERT ON job_executions
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION metric_executions_inserted();

CREATE TRIGGER metric_executions_updated AFTER UPDATE ON job_executions
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION metric_executions_updated();

CREATE TRIGGER metric_executions_deleted AFTER DELETE ON job_executions
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION metric_executions_deleted();
