-- The durable queue of the embedded default, in the same SQLite file, and the record of every
-- attempt of an execution.
--
-- A task is one execution waiting to run, running, or finished. `state`: `pending` (runnable once
-- `run_after` has passed: new, scheduled for later or waiting for a retry), `active` (leased by a
-- worker until `lease_expires_at`, extended by heartbeats), `done` (recorded; kept for the counts)
-- or `dead` (failed for good or cancelled).

CREATE TABLE tasks (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    job_id           TEXT NOT NULL,
    job_name         TEXT NOT NULL,
    job_version      INTEGER,
    queue            TEXT NOT NULL,
    state            TEXT NOT NULL,
    trigger          TEXT NOT NULL,
    input            TEXT NOT NULL,
    -- The schedule fire this task is for; unique per job, so a fire is enqueued once.
    fire_at          TEXT,
    run_after        TEXT NOT NULL,
    -- Attempts started; a lease lost to a crash gives its attempt back.
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    -- 1 when the job's overlap policy is `queue`: it waits while another task of the job is active.
    exclusive        INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at TEXT,
    last_error       TEXT,
    -- The final outcome of a `done`/`dead` task: completed, skipped, failed, timed_out, cancelled, …
    outcome          TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE UNIQUE INDEX tasks_fire_idx ON tasks (job_id, fire_at);
CREATE INDEX tasks_ready_idx ON tasks (state, queue, run_after, created_at);
CREATE INDEX tasks_job_state_idx ON tasks (job_id, state);

-- One row per attempt of an execution (the execution itself is `job_executions`).
CREATE TABLE execution_attempts (
    execution_id TEXT NOT NULL,
    tenant_id    TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    status       TEXT NOT NULL,
    error        TEXT,
    started_at   TEXT NOT NULL,
    finished_at  TEXT NOT NULL,
    duration_ms  INTEGER NOT NULL,
    fuel_used    INTEGER NOT NULL,
    log          TEXT,
    calls        TEXT,
    PRIMARY KEY (execution_id, attempt)
);

-- Scheduler bookkeeping per job: paused jobs have `enabled = 0` in `jobs`.
CREATE INDEX jobs_due_idx ON jobs (enabled, next_run_at);
