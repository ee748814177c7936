-- The W3C trace context a run request carried (`traceparent`), the parent of the execution's
-- span when traces are exported (host/src/telemetry.rs).
ALTER TABLE job_executions ADD COLUMN traceparent TEXT;
