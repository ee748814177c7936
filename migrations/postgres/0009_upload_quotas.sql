-- Upload quotas per tenant: how many jobs it may have, how many versions of each job are kept,
-- and how many bytes of components it may store. NULL: the host's default
-- (`CODEAI_TENANT_MAX_JOBS`, `CODEAI_TENANT_MAX_VERSIONS`, `CODEAI_TENANT_MAX_BYTES`); the
-- operator's own tenant (`default`) is limited only by what is set here.
ALTER TABLE tenants ADD COLUMN max_jobs BIGINT;
ALTER TABLE tenants ADD COLUMN max_versions BIGINT;
ALTER TABLE tenants ADD COLUMN max_bytes BIGINT;

-- Before a compiled artifact is removed, the store is asked whether any version (any job, any
-- tenant) still has the same component.
CREATE INDEX job_versions_sha256_idx ON job_versions (sha256);
