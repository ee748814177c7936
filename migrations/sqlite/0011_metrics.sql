-- What /metrics reports, kept as executions are written instead of counted at each scrape:
-- triggers on job_executions keep each total equal to the GROUP BY over job_executions it
-- replaces, whichever statement writes the row. Totals that drop to zero stay (the scrape skips
-- them). `shard` is always 0 here (SQLite has one writer); see the PostgreSQL migration.

-- Executions by job, status and queue (each row counted under its current status), with the
-- retries they took (attempts after the first).
CREATE TABLE metric_executions (
    job_name TEXT NOT NULL,
    status   TEXT NOT NULL,
    queue    TEXT NOT NULL,
    shard    INTEGER NOT NULL DEFAULT 0,
    n        INTEGER NOT NULL,
    retries  INTEGER NOT NULL,
    PRIMARY KEY (job_name, status, queue, shard)
);

-- Finished executions (a duration and a start) by job and the histogram bucket of their wall
-- time: `le_ms` is the smallest bound at least the duration (store::executions::DURATION_BOUNDS_MS
-- holds the same list), 0 beyond the last.
CREATE TABLE metric_durations (
    job_id   TEXT NOT NULL,
    job_name TEXT NOT NULL,
    le_ms    INTEGER NOT NULL,
    shard    INTEGER NOT NULL DEFAULT 0,
    n        INTEGER NOT NULL,
    total_ms INTEGER NOT NULL,
    PRIMARY KEY (job_id, job_name, le_ms, shard)
);

INSERT INTO metric_executions (job_name, status, queue, n, retries)
SELECT COALESCE(job_name, ''), status, COALESCE(queue, ''), COUNT(*), SUM(MAX(attempt - 1, 0))
FROM job_executions GROUP BY 1, 2, 3;

INSERT INTO metric_durations (job_id, job_name, le_ms, n, total_ms)
SELECT job_id, COALESCE(job_name, ''), CASE
            WHEN duration_ms <= 5 THEN 5 WHEN duration_ms <= 10 THEN 10 WHEN duration_ms <= 25 THEN 25 WHEN duration_ms <= 50 THEN 50
            WHEN duration_ms <= 100 THEN 100 WHEN duration_ms <= 250 THEN 250 WHEN duration_ms <= 500 THEN 500 WHEN duration_ms <= 1000 THEN 1000
            WHEN duration_ms <= 2500 THEN 2500 WHEN duration_ms <= 5000 THEN 5000 WHEN duration_ms <= 10000 THEN 10000 WHEN duration_ms <= 30000 THEN 30000
            WHEN duration_ms <= 60000 THEN 60000 WHEN duration_ms <= 300000 THEN 300000
            ELSE 0 END, COUNT(*), SUM(duration_ms)
FROM job_executions WHERE duration_ms IS NOT NULL AND started_at IS NOT NULL GROUP BY 1, 2, 3;

-- A row's part of the totals, added (`sign` 1) or taken away (-1): the triggers below write
-- each row they see here, and this view's trigger adds it up.
CREATE VIEW metric_changes AS
SELECT 0 AS sign, job_id, job_name, status, queue, attempt, started_at, duration_ms
FROM job_executions WHERE 0;

CREATE TRIGGER metric_changes_add INSTEAD OF INSERT ON metric_changes BEGIN
    INSERT INTO metric_executions (job_name, status, queue, n, retries)
    VALUES (COALESCE(NEW.job_name, ''), NEW.status, COALESCE(NEW.queue, ''), NEW.sign,
            NEW.sign * MAX(NEW.attempt - 1, 0))
    ON CONFLICT (job_name, status, queue, shard)
    DO UPDATE SET n = n + excluded.n, retries = retries + excluded.retries;
    INSERT INTO metric_durations (job_id, job_name, le_ms, n, total_ms)
    SELECT NEW.job_id, COALESCE(NEW.job_name, ''), CASE
            WHEN NEW.duration_ms <= 5 THEN 5 WHEN NEW.duration_ms <= 10 THEN 10 WHEN NEW.duration_ms <= 25 THEN 25 WHEN NEW.duration_ms <= 50 THEN 50
            WHEN NEW.duration_ms <= 100 THEN 100 WHEN NEW.duration_ms <= 250 THEN 250 WHEN NEW.duration_ms <= 500 THEN 500 WHEN NEW.duration_ms <= 1000 THEN 1000
            WHEN NEW.duration_ms <= 2500 THEN 2500 WHEN NEW.duration_ms <= 5000 THEN 5000 WHEN NEW.duration_ms <= 10000 THEN 10000 WHEN NEW.duration_ms <= 30000 THEN 30000
            WHEN NEW.duration_ms <= 60000 THEN 60000 WHEN NEW.duration_ms <= 300000 THEN 300000
            ELSE 0 END, NEW.sign, NEW.sign * NEW.duration_ms
    WHERE NEW.duration_ms IS NOT NULL AND NEW.started_at IS NOT NULL
    ON CONFLICT (job_id, job_name, le_ms, shard)
    DO UPDATE SET n = n + excluded.n, total_ms = total_ms + excluded.total_ms;
END;

CREATE TRIGGER metric_executions_insert AFTER INSERT ON job_executions BEGIN
    INSERT INTO metric_changes VALUES (1, NEW.job_id, NEW.job_name, NEW.status, NEW.queue,
                                       NEW.attempt, NEW.started_at, NEW.duration_ms);
END;

CREATE TRIGGER metric_executions_delete AFTER DELETE ON job_executions BEGIN
    INSERT INTO metric_changes VALUES (-1, OLD.job_id, OLD.job_name, OLD.status, OLD.queue,
                                       OLD.attempt, OLD.started_at, OLD.duration_ms);
END;

-- An update is the old row's delete and the new row's insert.
CREATE TRIGGER metric_executions_update
AFTER UPDATE OF job_id, job_name, status, queue, attempt, started_at, duration_ms ON job_executions
BEGIN
    INSERT INTO metric_changes VALUES (-1, OLD.job_id, OLD.job_name, OLD.status, OLD.queue,
                                       OLD.attempt, OLD.started_at, OLD.duration_ms);
    INSERT INTO metric_changes VALUES (1, NEW.job_id, NEW.job_name, NEW.status, NEW.queue,
                                       NEW.attempt, NEW.started_at, NEW.duration_ms);
END;
