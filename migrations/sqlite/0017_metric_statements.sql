-- Nothing on SQLite: the PostgreSQL side of this migration adds the /metrics totals up once per
-- statement instead of once per row, and SQLite triggers run for each row only. An upsert there
-- is a B-tree write in this process, with none of the row versions that made PostgreSQL's slow.
SELECT 1;
