-- 0016: statistics exact when a write round's batches are rebuilt alone.
--
-- From this version a write round inserts the audience cells of all its
-- batches at once (store.insertAudience), under the round's token: one
-- insert builds and merges a quarter of the sketches that one per batch
-- did. The statistics keep no trace of the rows they counted, so the
-- insert also carries one marker cell per batch and month (dim '(batch)',
-- site ''), and a batch rebuilt alone after a crash reads them to learn
-- what of its round was stored (store.insertRebuiltAudience).
--
-- The engine does not order the writes of an insert's views, and a crash
-- may fall between them: a month may be marked in audience_hourly and not
-- in audience_daily, or the other way round. The two tables are therefore
-- fed side by side from audience_sketches, a Null table of built sketches,
-- rather than the daily one from the hourly one (0007), and each has a Null
-- table of its own, audience_cells_hourly and audience_cells_daily, for the
-- rebuilt batch's rows that only it lacks. Each sketch is still built once.
--
--   audience_cells  -> audience_sketches -> audience_hourly
--                                        -> audience_daily
--   audience_cells_hourly                -> audience_hourly
--   audience_cells_daily                 -> audience_daily
--   audience_in (0004, earlier versions) -> audience_sketches
--
-- The tables, their types and their contents are unchanged.

CREATE TABLE IF NOT EXISTS ${stats}.audience_sketches
(
    site     LowCardinality(String),
    dim      LowCardinality(String),
    hour     DateTime('UTC'),
    key      String,
    hits     UInt64,
    visitors AggregateFunction(uniqCombined64, UInt64)
)
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${stats}.audience_sketches_hourly_mv TO ${stats}.audience_hourly
AS SELECT site, dim, hour, key, hits, visitors
FROM ${stats}.audience_sketches;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${stats}.audience_sketches_daily_mv TO ${stats}.audience_daily
AS SELECT site, dim, toDate(hour) AS day, key, hits, visitors
FROM ${stats}.audience_sketches;

CREATE TABLE IF NOT EXISTS ${stats}.audience_cells_hourly
(
    site     LowCardinality(String),
    dim      LowCardinality(String),
    hour     DateTime('UTC'),
    key      String,
    hits     UInt64,
    visitors Array(UInt64)
)
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${stats}.audience_cells_hourly_mv TO ${stats}.audience_hourly
AS SELECT site, dim, hour, key, hits, arrayReduce('uniqCombined64State', visitors) AS visitors
FROM ${stats}.audience_cells_hourly;

CREATE TABLE IF NOT EXISTS ${stats}.audience_cells_daily
(
    site     LowCardinality(String),
    dim      LowCardinality(String),
    hour     DateTime('UTC'),
    key      String,
    hits     UInt64,
    visitors Array(UInt64)
)
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${stats}.audience_cells_daily_mv TO ${stats}.audience_daily
AS SELECT site, dim, toDate(hour) AS day, key, hits, arrayReduce('uniqCombined64State', visitors) AS visitors
FROM ${stats}.audience_cells_daily;

-- The switch: from here audience_cells and audience_in reach both tables
-- through audience_sketches.
DROP VIEW IF EXISTS ${stats}.audience_daily_from_hourly_mv;

DROP VIEW IF EXISTS ${stats}.audience_cells_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${stats}.audience_cells_sketches_mv TO ${stats}.audience_sketches
AS SELECT site, dim, hour, key, hits, arrayReduce('uniqCombined64State', visitors) AS visitors
FROM ${stats}.audience_cells;

DROP VIEW IF EXISTS ${stats}.audience_hourly_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${stats}.audience_in_sketches_mv TO ${stats}.audience_sketches
AS SELECT
    site,
    d.1 AS dim,
    hour,
    d.2 AS key,
    toUInt64(count()) AS hits,
    uniqCombined64StateIf(visitor, visitor != 0) AS visitors
FROM ${stats}.audience_in
ARRAY JOIN arrayFilter(x -> x.2 != '', [
    ('site', '*'),
    ('path', path),
    ('country', if(country = '', '(unknown)', country)),
    ('region', if(region = '', '', concat(country, '-', region))),
    ('city', if(city = '', '', concat(country, '-', region, '/', city))),
    ('browser', browser),
    ('os', os),
    ('device', device),
    ('referrer', referrer_domain),
    ('status', status_class)
]) AS d
GROUP BY site, dim, hour, key;
