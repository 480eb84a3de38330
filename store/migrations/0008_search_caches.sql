-- 0008: the searched tables keep their index in memory from the start.
--
-- A search reads, in every part it touches, the primary index and the marks
-- (where each granule starts) of each column it returns. By default both are
-- loaded on first use: the first searches after a restart, or after a day of
-- new parts, wait for those small reads from disk, one per column and part,
-- and make bench measured them as the slowest requests (two to three times
-- the median). With these settings the marks enter the mark cache when a part
-- is written, merged or loaded, and the primary index when the table is
-- loaded. Memory: about 25 bytes per column and granule of 8,192 rows (some
-- 90 MB for a billion access-log rows), within the server's mark_cache_size.
-- Needs ClickHouse 24.12 or later.

ALTER TABLE ${access}.access_log MODIFY SETTING prewarm_mark_cache = 1, primary_key_lazy_load = 0;

ALTER TABLE ${connections}.connection_records MODIFY SETTING prewarm_mark_cache = 1, primary_key_lazy_load = 0;

ALTER TABLE ${connections}.held_records MODIFY SETTING prewarm_mark_cache = 1, primary_key_lazy_load = 0;
