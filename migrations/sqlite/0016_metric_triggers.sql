-- The /metrics totals of 0011, kept by the same rules, with the upserts in each trigger itself
-- instead of in the trigger of a view the others inserted into: each row written paid for that
-- view's trigger program on top of the upserts (BENCHMARKS.md, 2026-12-05: about 5 % of the
-- embedded default's no-op throughput). The bucket bounds are 0011's (and
-- store::executions::DURATION_BOUNDS_MS).

DROP TRIGGER metric_executions_insert;
DROP TRIGGER metric_executions_delete;
DROP TRIGGER metric_executions_update;
DROP TRIGGER metric_changes_add;
DROP VIEW metric_changes;

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
