-- What the HTTP API adds: host-wide settings (the key that signs report download links) and
-- the alerts the host evaluates.

CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- An alert of the spec's monitoring table. `key` names the condition (`job_failed:<job id>`,
-- `queue_backlog:<queue>`, `long_running:<execution id>`, `worker_starvation`); one row per
-- activation, `resolved_at` set when the condition clears. Host-wide alerts have no tenant.
CREATE TABLE alerts (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT,
    key          TEXT NOT NULL,
    kind         TEXT NOT NULL,
    subject      TEXT NOT NULL,
    message      TEXT NOT NULL,
    -- `active` or `resolved`.
    status       TEXT NOT NULL,
    -- How it was delivered: `slack`, `outbox` (held) or the delivery error.
    delivery     TEXT,
    started_at   TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    resolved_at  TIMESTAMPTZ
);
CREATE INDEX alerts_status_idx ON alerts (status, key);
CREATE INDEX alerts_tenant_idx ON alerts (tenant_id, started_at);
CREATE INDEX job_executions_tenant_idx ON job_executions (tenant_id, created_at);
CREATE INDEX reports_tenant_idx ON reports (tenant_id, created_at);
