-- The tenant boundary (SECURITY.md). Tenants' entity tables live in their own namespaces
-- (a schema `<platform schema>_tenant_<tenant>` each) and are created when their jobs are registered; nothing
-- here changes the platform's tables. `reports.path` is no longer read or written: a report's
-- file is found from its id under the report directory.
--
-- When a tenant's job last ran a maintenance operation on one of its tables: a tenant may run
-- each operation on each table once per hour (VACUUM and REINDEX lock and rewrite tables).
CREATE TABLE maintenance_runs (
    tenant_id TEXT NOT NULL,
    target    TEXT NOT NULL,
    op        TEXT NOT NULL,
    last_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, target, op)
);
