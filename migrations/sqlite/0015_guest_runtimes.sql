-- The guest runtime every `codeai build` component starts with, stored once per runtime: a version
-- of a job built by `codeai build` keeps in `component` only what follows the runtime (its program
-- and manifest sections) and names the runtime in `runtime_sha256`. Its bytes are the two put
-- together, exactly as registered; the storage quota still counts them whole.
CREATE TABLE guest_runtimes (
    sha256 TEXT PRIMARY KEY,
    component BLOB NOT NULL,
    created_at TEXT NOT NULL
);
ALTER TABLE job_versions ADD COLUMN runtime_sha256 TEXT REFERENCES guest_runtimes (sha256);
