-- The SQL queue (used on PostgreSQL when no Redis is configured) and the record of every attempt
-- of an execution. Same schema as `sqlite/0002_queue.sql`.
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
    job_version      BIGINT,
    queue            TEXT NOT NULL,
    state            TEXT NOT NULL,
    trigger          TEXT NOT NULL,
    input            TEXT NOT NULL,
    -- The schedule fire this task is for; unique per job, so a fire is enqueued once.
    fire_at          TIMESTAMPTZ,
    run_after        TIMESTAMPTZ NOT NULL,
    -- Attempts started; a lease lost to a crash gives its attempt back.
    attempt          BIGINT NOT NULL DEFAULT 0,
    max_attempts     BIGINT NOT NULL,
    -- True when the job's overlap policy is `queue`: it waits while another task of the job is active.
    exclusive        BOOLEAN NOT NULL DEFAULT FALSE,
    lease_owner      TEXT,
    lease_expires_at TIMESTAMPTZ,
    last_error       TEXT,
    -- The final outcome of a `done`/`dead` task: completed, skipped, failed, timed_out, cancelled, …
    outcome          TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX tasks_fire_idx ON tasks (job_id, fire_at);
CREATE INDEX tasks_ready_idx ON tasks (state, queue, run_after, created_at);
CREATE INDEX tasks_job_state_idx ON tasks (job_id, state);

-- One row per attempt of an execution (the execution itself is `job_executions`).
CREATE TABLE execution_attempts (
    execution_id TEXT NOT NULL,
    tenant_id    TEXT NOT NULL,
    attempt      BIGINT NOT NULL,
    status       TEXT NOT NULL,
    error        TEXT,
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ NOT NULL,
    duration_ms  BIGINT NOT NULL,
    fuel_used    BIGINT NOT NULL,
    log          TEXT,
    calls        TEXT,
    PRIMARY KEY (execution_id, attempt)
);

-- Scheduler bookkeeping per job: paused jobs have `enabled = FALSE` in `jobs`.
CREATE INDEX jobs_due_idx ON jobs (enabled, next_run_at);
