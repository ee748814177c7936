-- Jobs that run on events (`trigger: on(E)`): the dispatcher hands each new event to the jobs of
-- its tenant that wait for it, then marks it dispatched; `depth` counts the triggered executions
-- that led to it (bounded at run time); an execution set off by an event keeps its id.
ALTER TABLE events ADD COLUMN dispatched_at TIMESTAMPTZ;
ALTER TABLE events ADD COLUMN depth BIGINT NOT NULL DEFAULT 0;
ALTER TABLE job_executions ADD COLUMN event_id TEXT;
-- Events from before this migration set nothing off.
UPDATE events SET dispatched_at = created_at;
CREATE INDEX events_undispatched_idx ON events (created_at) WHERE dispatched_at IS NULL;
