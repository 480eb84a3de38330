-- 0007: audience statistics aggregated before they reach the engine.
--
-- Until 0006, ingest inserted one row per kept hit into audience_in and two
-- materialized views each expanded it into one row per dimension, grouped
-- them and built a unique-visitor sketch per cell: the engine did the same
-- grouping twice per batch, and that was most of what statistics cost.
--
-- From 0007, connlog groups each batch itself (store.insertAudience) and
-- inserts one row per cell into audience_cells: site, dimension, hour, key,
-- the number of hits and the batch's distinct visitor hashes of that cell.
-- audience_cells is a Null table: it stores nothing, and its view turns the
-- hashes into the uniqCombined64 sketch of audience_hourly. audience_daily is
-- now fed from audience_hourly (the day's sketches are the merged hour
-- sketches), so each sketch is built once.
--
-- The tables, their types and their contents are unchanged. audience_in and
-- its hourly view stay, so an instance of an earlier version still counts
-- correctly during a rolling upgrade (its rows reach audience_daily through
-- audience_hourly, like the new ones); a later migration drops them.
--
-- Exactly once: ingest inserts into audience_cells with the batch's
-- insert_deduplication_token and deduplicate_blocks_in_dependent_materialized_views,
-- which covers the chained view too.

CREATE TABLE IF NOT EXISTS ${stats}.audience_cells
(
    site     LowCardinality(String),
    dim      LowCardinality(String),
    hour     DateTime('UTC'),
    key      String,
    hits     UInt64,
    visitors Array(UInt64)
)
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${stats}.audience_cells_mv TO ${stats}.audience_hourly
AS SELECT
    site,
    dim,
    hour,
    key,
    hits,
    arrayReduce('uniqCombined64State', visitors) AS visitors
FROM ${stats}.audience_cells;

DROP VIEW IF EXISTS ${stats}.audience_daily_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${stats}.audience_daily_from_hourly_mv TO ${stats}.audience_daily
AS SELECT
    site,
    dim,
    toDate(hour) AS day,
    key,
    hits,
    visitors
FROM ${stats}.audience_hourly;
