-- The /metrics totals of 0011, kept by the same rules, with the upserts called from the trigger
-- itself instead of from the trigger of a view it inserted into: each row written paid for that
-- view's trigger on top of the upserts (the same change as on SQLite).

DROP TRIGGER metric_changes_add ON metric_changes;
DROP FUNCTION metric_changes_add();

-- A row's part of the totals, added (`sign` 1) or taken away (-1), in this connection's shard.
CREATE FUNCTION metric_add(sign INTEGER, r job_executions) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    me INTEGER := pg_backend_pid();
BEGIN
    INSERT INTO metric_executions AS m (job_name, status, queue, shard, n, retries)
    VALUES (COALESCE(r.job_name, ''), r.status, COALESCE(r.queue, ''), me, sign,
            sign * GREATEST(r.attempt - 1, 0))
    ON CONFLICT (job_name, status, queue, shard)
    DO UPDATE SET n = m.n + excluded.n, retries = m.retries + excluded.retries;
    IF r.duration_ms IS NOT NULL AND r.started_at IS NOT NULL THEN
        INSERT INTO metric_durations AS d (job_id, job_name, le_ms, shard, n, total_ms)
        VALUES (r.job_id, COALESCE(r.job_name, ''), metric_duration_bucket(r.duration_ms),
                me, sign, sign * r.duration_ms)
        ON CONFLICT (job_id, job_name, le_ms, shard)
        DO UPDATE SET n = d.n + excluded.n, total_ms = d.total_ms + excluded.total_ms;
    END IF;
END
$$;

-- An update is the old row's delete and the new row's insert.
CREATE OR REPLACE FUNCTION metric_executions_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM metric_add(-1, OLD);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM metric_add(1, NEW);
    END IF;
    RETURN NULL;
END
$$;

DROP VIEW metric_changes;
