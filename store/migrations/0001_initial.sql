-- 0001: the three data classes of the foundation: connection records (legal,
-- 12 months), access log (security, 6 months), and the operations database
-- (quarantine 30 days, audit trail 3 years).
--
-- Every table is partitioned by day so that TTL expiry drops whole parts
-- (ttl_only_drop_parts = 1) instead of rewriting them, and so that data is
-- never kept more than a day past its lifetime. Sorting by client address
-- then time makes "this IP (or network) in this time window" a primary-key
-- range read.
--
-- non_replicated_deduplication_window lets ingest retry a batch with the
-- same insert_deduplication_token without storing it twice.

CREATE DATABASE IF NOT EXISTS ${connections};

CREATE DATABASE IF NOT EXISTS ${access};

CREATE TABLE IF NOT EXISTS ${access}.access_log
(
    event_time      DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    ingested_at     DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    client_ip       IPv6,
    client_port     UInt16,
    peer_ip         IPv6,
    forwarded_for   String CODEC(ZSTD(1)),
    server_addr     IPv6,
    server_port     UInt16,
    site            LowCardinality(String),
    method          LowCardinality(String),
    path            String CODEC(ZSTD(1)),
    query           String CODEC(ZSTD(1)),
    protocol        LowCardinality(String),
    status          UInt16,
    bytes_sent      UInt64,
    referer         String CODEC(ZSTD(1)),
    user_agent      String CODEC(ZSTD(1)),
    request_time_us UInt64,
    upstream        String CODEC(ZSTD(1)),
    request_id      String CODEC(ZSTD(1)),
    user            String CODEC(ZSTD(1)),
    tls_protocol    LowCardinality(String),
    kafka_topic     LowCardinality(String),
    kafka_partition Int32,
    kafka_offset    Int64 CODEC(Delta, ZSTD(1)),
    INDEX idx_site site TYPE set(1000) GRANULARITY 4,
    INDEX idx_status status TYPE minmax GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toDate(event_time)
ORDER BY (client_ip, event_time)
TTL toDateTime(event_time) + INTERVAL 6 MONTH DELETE
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS ${connections}.connection_records
(
    event_time      DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    ingested_at     DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    client_ip       IPv6,
    client_port     UInt16,
    server_addr     IPv6,
    server_port     UInt16,
    site            LowCardinality(String),
    protocol        LowCardinality(String),
    tls_protocol    LowCardinality(String),
    operation       Enum8('read' = 1, 'create' = 2, 'modify' = 3, 'delete' = 4),
    -- content identifier and author: only for create/modify/delete (CPCE
    -- L34-1 VI forbids keeping the pages consulted); empty for reads
    path            String CODEC(ZSTD(1)),
    user            String CODEC(ZSTD(1)),
    status          UInt16,
    kafka_topic     LowCardinality(String),
    kafka_partition Int32,
    kafka_offset    Int64 CODEC(Delta, ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toDate(event_time)
ORDER BY (client_ip, event_time, client_port)
TTL toDateTime(event_time) + INTERVAL 12 MONTH DELETE
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS ${ops}.quarantine
(
    received_at     DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    kafka_topic     LowCardinality(String),
    kafka_partition Int32,
    kafka_offset    Int64,
    reason          String,
    raw             String CODEC(ZSTD(3))
)
ENGINE = MergeTree
PARTITION BY toDate(received_at)
ORDER BY (received_at, kafka_topic, kafka_partition, kafka_offset)
TTL toDateTime(received_at) + INTERVAL 30 DAY DELETE
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS ${ops}.audit
(
    time        DateTime64(3, 'UTC'),
    actor       String,
    role        LowCardinality(String),
    source      String,
    method      LowCardinality(String),
    endpoint    LowCardinality(String),
    purpose     String,
    filters     String,
    status      UInt16,
    rows        UInt64,
    outcome     LowCardinality(String),
    reason      String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(time)
ORDER BY time
TTL toDateTime(time) + INTERVAL 3 YEAR DELETE
-- an audit row must be on disk before the data it records leaves
SETTINGS ttl_only_drop_parts = 1, fsync_after_insert = 1, fsync_part_directory = 1;
