-- Fewer index entries for each job run (issue 19), the same as on SQLite.
--
-- (`job_executions` has been keyed by `id` alone here since 0005; SQLite does it now.)

-- A task's entry by job is kept while it waits or runs; its finish takes the entry out.
DROP INDEX tasks_job_state_idx;
CREATE INDEX tasks_job_state_idx ON tasks (job_id, state)
    WHERE state = 'pending' OR state = 'active';

-- Only a schedule's fires have a fire instant to be unique on.
DROP INDEX tasks_fire_idx;
CREATE UNIQUE INDEX tasks_fire_idx ON tasks (job_id, fire_at) WHERE fire_at IS NOT NULL;
