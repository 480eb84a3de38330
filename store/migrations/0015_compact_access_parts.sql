-- 0015: a batch of the access log is written as one compact part (all
-- columns in one file) rather than a wide one (two files per column, 70 for
-- this table): ingest writes a part per batch, and creating those files was
-- a sixth of the CPU of a backlog (BENCHMARKS.md). Parts merged past 64 MiB
-- of uncompressed data are wide, as searches read them best. The other
-- tables' batches are below the default threshold (10 MiB) already.
ALTER TABLE ${access}.access_log
    MODIFY SETTING min_bytes_for_wide_part = 67108864;
