-- Tenants take turns within a queue (issue 17): one tenant's flood of tasks must not make another
-- tenant's task wait for the whole flood.
--
-- `turn` is given when a task is enqueued: one after its tenant's last waiting task in the same
-- queue, and not before the queue's current turn (the highest turn leased, or the lowest waiting).
-- A lease takes the runnable task with the lowest turn, the oldest first among equals, so every
-- tenant with waiting tasks has one leased per turn. Tasks waiting at this upgrade keep their
-- order (turn 0, then by age).
ALTER TABLE tasks ADD COLUMN turn INTEGER NOT NULL DEFAULT 0;

-- A lease walks the queue's pending tasks by turn (it replaces the walk by `run_after`); the
-- same index gives the highest turn leased (active, done) and the lowest waiting.
DROP INDEX tasks_ready_idx;
CREATE INDEX tasks_ready_idx ON tasks (state, queue, turn, created_at);

-- A tenant's last waiting turn in a queue: the waiting tasks only, so a lease or a finish
-- touches at most one entry of it.
CREATE INDEX tasks_lane_idx ON tasks (queue, tenant_id, turn) WHERE state = 'pending';
