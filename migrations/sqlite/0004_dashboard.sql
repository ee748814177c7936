-- The dashboard's throughput chart counts executions by the minute they finished
-- (`GET /stats/throughput`): without this index every refresh would read the whole history.
CREATE INDEX job_executions_finished_idx ON job_executions (finished_at);
