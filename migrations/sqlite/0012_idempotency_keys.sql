-- The `Idempotency-Key` of `POST /jobs/{id}/run`: the first answer given to a tenant's key,
-- kept 24 hours, so that a retried request answers the same execution instead of running the
-- job again. Keys older than that are deleted when the tenant uses a key.
CREATE TABLE idempotency_keys (
    tenant_id    TEXT NOT NULL,
    key          TEXT NOT NULL,
    job_id       TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    -- The JSON body answered.
    response     TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (tenant_id, created_at);
