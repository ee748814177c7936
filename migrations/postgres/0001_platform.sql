-- The platform's own tables on PostgreSQL (scale-out). The same schema as `sqlite/`, with
-- native types: TIMESTAMPTZ, UUID where an example entity reads the id as a uuid, BOOLEAN, BYTEA.
-- Every row belongs to a tenant (`tenant_id`); the built-in tenant is `default`.

CREATE TABLE tenants (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,
    max_concurrent      BIGINT,
    memory_limit_bytes  BIGINT,
    fuel_budget         BIGINT,
    created_at          TIMESTAMPTZ NOT NULL
);

INSERT INTO tenants (id, name, created_at)
VALUES ('default', 'default', now());

CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    -- SHA-256 of the token, hex; the token itself is shown once and never stored.
    token_hash   TEXT NOT NULL UNIQUE,
    is_admin     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ
);

-- A registered job: its current version, schedule and bookkeeping.
CREATE TABLE jobs (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    name          TEXT NOT NULL,
    version       BIGINT NOT NULL,
    description   TEXT,
    job_type      TEXT NOT NULL DEFAULT 'custom',
    -- `cron`, `every`, `once` or `manual`.
    schedule_kind TEXT NOT NULL,
    cron          TEXT,
    interval_ms   BIGINT,
    run_at        TIMESTAMPTZ,
    timezone      TEXT NOT NULL DEFAULT 'UTC',
    queue         TEXT NOT NULL DEFAULT 'default',
    timeout_ms    BIGINT NOT NULL,
    enabled       BOOLEAN NOT NULL DEFAULT TRUE,
    next_run_at   TIMESTAMPTZ,
    last_run_at   TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, name)
);

-- Every uploaded or built version of a job: the component and its manifest. Executions keep
-- the version they ran.
CREATE TABLE job_versions (
    job_id      TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    version     BIGINT NOT NULL,
    sha256      TEXT NOT NULL,
    manifest    TEXT NOT NULL,
    component   BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (job_id, version)
);

-- One execution of a job (all its attempts share the row; `attempt` counts them).
-- `job_id`, `status`, `started_at` and `finished_at` are also what the example's
-- `JobExecution` entity reads, so jobs can archive old executions through the data capability.
CREATE TABLE job_executions (
    id           UUID NOT NULL,
    tenant_id    TEXT NOT NULL,
    job_id       TEXT NOT NULL,
    job_name     TEXT,
    job_version  BIGINT,
    -- queued, running, completed, skipped, failed, timed_out, cancelled, ...
    status       TEXT NOT NULL,
    trigger      TEXT,
    queue        TEXT,
    input        TEXT,
    output       TEXT,
    error        TEXT,
    step         TEXT,
    attempt      BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL DEFAULT 1,
    scheduled_at TIMESTAMPTZ,
    started_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ,
    duration_ms  BIGINT,
    fuel_used    BIGINT,
    -- JSON: the log lines and the capability calls with their timings.
    log          TEXT,
    calls        TEXT,
    created_at   TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX job_executions_job_idx ON job_executions (job_id, created_at);
CREATE INDEX job_executions_status_idx ON job_executions (status);
CREATE UNIQUE INDEX job_executions_id_idx ON job_executions (id);

-- Rendered report files; the file itself lives in the report store (a directory by default).
-- `job`, `format`, `size`, `created_at` and `expires_at` are what the example's `Report`
-- entity reads.
CREATE TABLE reports (
    id           UUID NOT NULL,
    tenant_id    TEXT NOT NULL,
    job          TEXT NOT NULL,
    execution_id TEXT,
    format       TEXT NOT NULL,
    size         BIGINT NOT NULL,
    name         TEXT,
    path         TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX reports_expires_idx ON reports (expires_at);

CREATE TABLE events (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    job          TEXT,
    execution_id TEXT,
    name         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX events_tenant_idx ON events (tenant_id, created_at);

-- Mail and Slack messages held because no transport is configured (or it failed).
CREATE TABLE outbox (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    job          TEXT,
    execution_id TEXT,
    -- `email` or `slack`.
    kind         TEXT NOT NULL,
    -- Email: the recipients (JSON array); Slack: the channel.
    recipient    TEXT NOT NULL,
    subject      TEXT,
    body         TEXT NOT NULL,
    -- JSON array of {id, name} of attached reports.
    attachments  TEXT NOT NULL DEFAULT '[]',
    -- `held` until something delivers it.
    status       TEXT NOT NULL DEFAULT 'held',
    reason       TEXT,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX outbox_tenant_idx ON outbox (tenant_id, created_at);

-- Per-job durable values (`state` capability), e.g. the last successful sync time.
CREATE TABLE job_state (
    tenant_id  TEXT NOT NULL,
    job        TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, job, key)
);
