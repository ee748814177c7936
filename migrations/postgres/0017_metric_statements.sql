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

-- The totals' changes for rows `removed` (taken away) and `added`, in this connection's shard.
CREATE FUNCTION metric_apply(removed job_executions[], added job_executions[])
RETURNS void LANGUAGE sql AS $$
    WITH changes AS (
        SELECT -1 AS sign, r.job_id, r.job_name, r.status, r.queue, r.attempt, r.started_at,
               r.duration_ms
        FROM unnest(removed) AS r
        UNION ALL
        SELECT 1, a.job_id, a.job_name, a.status, a.queue, a.attempt, a.started_at, a.duration_ms
        FROM unnest(added) AS a
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
$$;

-- An update is its old rows' delete and its new rows' insert. (A transition table's rows are
-- anonymous records: each is cast to the table's row type.)
CREATE FUNCTION metric_executions_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM metric_apply('{}', ARRAY(SELECT n::job_executions FROM new_rows AS n));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM metric_apply(ARRAY(SELECT o::job_executions FROM old_rows AS o),
                             ARRAY(SELECT n::job_executions FROM new_rows AS n));
    ELSE
        PERFORM metric_apply(ARRAY(SELECT o::job_executions FROM old_rows AS o), '{}');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER metric_executions_inserted AFTER INSERT ON job_executions
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION metric_executions_count();

CREATE TRIGGER metric_executions_updated AFTER UPDATE ON job_executions
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION metric_executions_count();

CREATE TRIGGER metric_executions_deleted AFTER DELETE ON job_executions
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION metric_executions_count();
