-- 0004: audience statistics that identify no one (issue 5), and the daily
-- visitor keys that make unique visitors countable.
--
-- Data flow: ingest inserts one row per kept hit into ${stats}.audience_in,
-- a Null table: it stores nothing. Two materialized views aggregate each
-- inserted block on the way in into AggregatingMergeTree tables, so no
-- per-visitor row is ever written to disk:
--
--   audience_hourly  (site, dim, hour, key)  kept 8 weeks
--   audience_daily   (site, dim, day, key)   kept 25 months
--
-- dim names the dimension a row counts and key its value:
--   site      ''                    totals of the site
--   path      /articles/42          path without query string
--   country   FR, (unknown)         ISO 3166-1 alpha-2
--   region    FR-IDF                only when geo_level is region or city
--   city      FR-IDF/Paris          only when geo_level is city
--   browser   Firefox               family from a fixed list
--   os        Android               family from a fixed list
--   device    mobile                desktop, mobile, tablet, other
--   referrer  google.com            registrable domain, (direct), (internal)…
--   status    4xx                   status class
--
-- hits counts requests; visitors is a uniqCombined64 sketch of the daily
-- visitor hash (0, "no key", is left out). The hash changes every UTC day,
-- so visitors merged over several days count visitor-days. No column holds
-- an address, a network, a user agent or a referrer URL: the truncated
-- network is not stored at all.
--
-- Statistics are per site: every table is keyed by site first and nothing
-- aggregates across sites.
--
-- Exactly once: ingest inserts into audience_in with the batch's
-- insert_deduplication_token and deduplicate_blocks_in_dependent_materialized_views,
-- so a retried batch is deduplicated in both target tables.
--
-- Users: the ingest user needs INSERT on ${stats}.audience_in (the views
-- write the targets); the stats readers need SELECT on ${stats}.audience_hourly
-- and ${stats}.audience_daily only.

CREATE DATABASE IF NOT EXISTS ${stats};

CREATE TABLE IF NOT EXISTS ${stats}.audience_in
(
    site            LowCardinality(String),
    hour            DateTime('UTC'),
    path            String,
    country         LowCardinality(String),
    region          LowCardinality(String),
    city            LowCardinality(String),
    browser         LowCardinality(String),
    os              LowCardinality(String),
    device          LowCardinality(String),
    referrer_domain LowCardinality(String),
    status_class    LowCardinality(String),
    visitor         UInt64
)
ENGINE = Null;

CREATE TABLE IF NOT EXISTS ${stats}.audience_hourly
(
    site     LowCardinality(String),
    dim      LowCardinality(String),
    hour     DateTime('UTC'),
    key      String CODEC(ZSTD(1)),
    hits     SimpleAggregateFunction(sum, UInt64),
    visitors AggregateFunction(uniqCombined64, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (site, dim, hour, key)
TTL hour + INTERVAL 8 WEEK DELETE
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS ${stats}.audience_daily
(
    site     LowCardinality(String),
    dim      LowCardinality(String),
    day      Date,
    key      String CODEC(ZSTD(1)),
    hits     SimpleAggregateFunction(sum, UInt64),
    visitors AggregateFunction(uniqCombined64, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (site, dim, day, key)
TTL day + INTERVAL 25 MONTH DELETE
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${stats}.audience_hourly_mv TO ${stats}.audience_hourly
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

CREATE MATERIALIZED VIEW IF NOT EXISTS ${stats}.audience_daily_mv TO ${stats}.audience_daily
AS SELECT
    site,
    d.1 AS dim,
    toDate(hour) AS day,
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
GROUP BY site, dim, day, key;

-- Daily visitor keys (anonymize.KeyStore), shared by the instances of one
-- consumer group so their visitor hashes agree. Deliberately in the
-- operations database, never next to the statistics. Only the ingest user
-- may read or write it (grants: deploy/clickhouse/users.d, retention
-- engineer). A key serves its day and the next; connlog deletes it 48 hours
-- after its day began, and the TTL is the backstop.
CREATE TABLE IF NOT EXISTS ${ops}.visitor_keys
(
    day        Date,
    key        FixedString(16),
    created_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
PARTITION BY day
ORDER BY (day, created_at)
TTL day + INTERVAL 2 DAY DELETE
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000;
