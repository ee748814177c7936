-- What /metrics reports, kept as executions are written instead of counted at each scrape:
-- a trigger on job_executions keeps each total equal to the GROUP BY over job_executions it
-- replaces, whichever statement or process writes the row. Totals that drop to zero stay (the
-- scrape skips them).
--
-- `shard` is the writing connection's backend pid: two transactions never change the same total
-- row, so concurrent writers (many worker processes) do not wait on each other's locks or
-- deadlock on them; the scrape sums the shards (a row per connection that ever wrote a key;
-- shard 0 holds the totals from before this migration).

-- Executions by job, status and queue (each row counted under its current status), with the
-- retries they took (attempts after the first).
CREATE TABLE metric_executions (
    job_name TEXT NOT NULL,
    status   TEXT NOT NULL,
    queue    TEXT NOT NULL,
    shard    INTEGER NOT NULL DEFAULT 0,
    n        BIGINT NOT NULL,
    retries  BIGINT NOT NULL,
    PRIMARY KEY (job_name, status, queue, shard)
);

-- Finished executions (a duration and a start) by job and the histogram bucket of their wall
-- time: `le_ms` is the smallest bound at least the duration (store::executions::DURATION_BOUNDS_MS
-- holds the same list), 0 beyond the last.
CREATE TABLE metric_durations (
    job_id   TEXT NOT NULL,
    job_name TEXT NOT NULL,
    le_ms    BIGINT NOT NULL,
    shard    INTEGER NOT NULL DEFAULT 0,
    n        BIGINT NOT NULL,
    total_ms BIGINT NOT NULL,
    PRIMARY KEY (job_id, job_name, le_ms, shard)
);

CREATE FUNCTION metric_duration_bucket(ms BIGINT) RETURNS BIGINT LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
            WHEN ms <= 5 THEN 5 WHEN ms <= 10 THEN 10 WHEN ms <= 25 THEN 25 WHEN ms <= 50 THEN 50
            WHEN ms <= 100 THEN 100 WHEN ms <= 250 THEN 250 WHEN ms <= 500 THEN 500 WHEN ms <= 1000 THEN 1000
            WHEN ms <= 2500 THEN 2500 WHEN ms <= 5000 THEN 5000 WHEN ms <= 10000 THEN 10000 WHEN ms <= 30000 THEN 30000
            WHEN ms <= 60000 THEN 60000 WHEN ms <= 300000 THEN 300000
            ELSE 0 END
$$;

INSERT INTO metric_executions (job_name, status, queue, n, retries)
SELECT COALESCE(job_name, ''), status, COALESCE(queue, ''), COUNT(*), SUM(GREATEST(attempt - 1, 0))
FROM job_executions GROUP BY 1, 2, 3;

INSERT INTO metric_durations (job_id, job_name, le_ms, n, total_ms)
SELECT job_id, COALESCE(job_name, ''), metric_duration_bucket(duration_ms), COUNT(*), SUM(duration_ms)
FROM job_executions WHERE duration_ms IS NOT NULL AND started_at IS NOT NULL GROUP BY 1, 2, 3;

-- A row's part of the totals, added (`sign` 1) or taken away (-1): the trigger below writes each
-- row it sees here, and this view's trigger adds it up (the same objects as on SQLite).
CREATE VIEW metric_changes AS
SELECT 0 AS sign, job_id, job_name, status, queue, attempt, started_at, duration_ms
FROM job_executions WHERE false;

CREATE FUNCTION metric_changes_add() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    me INTEGER := pg_backend_pid();
BEGIN
    INSERT INTO metric_executions AS m (job_name, status, queue, shard, n, retries)
    VALUES (COALESCE(NEW.job_name, ''), NEW.status, COALESCE(NEW.queue, ''), me, NEW.sign,
            NEW.sign * GREATEST(NEW.attempt - 1, 0))
    ON CONFLICT (job_name, status, queue, shard)
    DO UPDATE SET n = m.n + excluded.n, retries = m.retries + excluded.retries;
    IF NEW.duration_ms IS NOT NULL AND NEW.started_at IS NOT NULL THEN
        INSERT INTO metric_durations AS d (job_id, job_name, le_ms, shard, n, total_ms)
        VALUES (NEW.job_id, COALESCE(NEW.job_name, ''), metric_duration_bucket(NEW.duration_ms),
                me, NEW.sign, NEW.sign * NEW.duration_ms)
        ON CONFLICT (job_id, job_name, le_ms, shard)
        DO UPDATE SET n = d.n + excluded.n, total_ms = d.total_ms + excluded.total_ms;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER metric_changes_add INSTEAD OF INSERT ON metric_changes
FOR EACH ROW EXECUTE FUNCTION metric_changes_add();

-- An update is the old row's delete and the new row's insert.
CREATE FUNCTION metric_executions_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO metric_changes VALUES (-1, OLD.job_id, OLD.job_name, OLD.status, OLD.queue,
                                           OLD.attempt, OLD.started_at, OLD.duration_ms);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO metric_changes VALUES (1, NEW.job_id, NEW.job_name, NEW.status, NEW.queue,
                                           NEW.attempt, NEW.started_at, NEW.duration_ms);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER metric_executions_count
AFTER INSERT OR DELETE OR UPDATE OF job_id, job_name, status, queue, attempt, started_at, duration_ms
ON job_executions FOR EACH ROW EXECUTE FUNCTION metric_executions_count();
