-- The size of a version's compiled artifact in the host's cache, counted with its component
-- towards its tenant's storage quota (max_bytes). NULL for versions stored before this
-- migration (counted as 0 until registered again).
ALTER TABLE job_versions ADD COLUMN artifact_bytes BIGINT;
