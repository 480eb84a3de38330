-- 0005: retention you can prove. Legal holds (held copies of connection
-- records that no TTL touches, and their register), retention changes and
-- enforcement runs, integrity manifests (one per batch, table and Kafka
-- partition, chained and signed) and the public keys that signed them.
--
-- The lifetimes themselves are not in this file: they come from the
-- configuration and are applied by Store.ApplyRetention (ALTER TABLE ...
-- MODIFY TTL) at start-up, recorded in retention_changes.

-- Held copies: the columns of connection_records plus the hold id. No TTL:
-- a held record stays until its hold is released (or expires), which drops
-- the hold's partition.
CREATE TABLE IF NOT EXISTS ${connections}.held_records
(
    hold_id         String,
    event_time      DateTime64(3, 'UTC'),
    ingested_at     DateTime64(3, 'UTC'),
    client_ip       IPv6,
    client_port     UInt16,
    server_addr     IPv6,
    server_port     UInt16,
    site            LowCardinality(String),
    protocol        LowCardinality(String),
    tls_protocol    LowCardinality(String),
    operation       Enum8('read' = 1, 'create' = 2, 'modify' = 3, 'delete' = 4),
    path            String CODEC(ZSTD(1)),
    user            String CODEC(ZSTD(1)),
    status          UInt16,
    kafka_topic     LowCardinality(String),
    kafka_partition Int32,
    kafka_offset    Int64
)
ENGINE = MergeTree
PARTITION BY hold_id
ORDER BY (client_ip, event_time, client_port);

-- The hold register: one row per state (created, released); the highest
-- version is the current state. Kept for the audit lifetime after release.
CREATE TABLE IF NOT EXISTS ${ops}.holds
(
    id          String,
    version     UInt64,
    reference   String,
    network     String,
    port        UInt16,
    site        String,
    from_time   DateTime64(3, 'UTC'),
    to_time     DateTime64(3, 'UTC'),
    expires     DateTime64(3, 'UTC'),
    created_by  String,
    created_at  DateTime64(3, 'UTC'),
    released_at DateTime64(3, 'UTC'),
    released_by String,
    rows        UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

CREATE TABLE IF NOT EXISTS ${ops}.retention_changes
(
    time     DateTime64(3, 'UTC'),
    actor    String,
    class    LowCardinality(String),
    db_table String,
    old_ttl  String,
    new_ttl  String
)
ENGINE = MergeTree
ORDER BY (db_table, time);

CREATE TABLE IF NOT EXISTS ${ops}.retention_runs
(
    time        DateTime64(3, 'UTC'),
    run_id      String,
    class       LowCardinality(String),
    db_table    String,
    site        String,
    rows_before UInt64,
    rows_after  UInt64,
    duration_ms UInt64,
    error       String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (class, db_table, site, time)
TTL toDateTime(time) + INTERVAL 3 YEAR DELETE
SETTINGS ttl_only_drop_parts = 1;

-- One manifest per batch, table and Kafka partition: a chain per (table,
-- topic, partition). groups_* describe the rows by expiry group (day, site):
-- a group leaves whole when its lifetime ends, so verify can tell expiry from
-- deletion; group_detail_hashes cover the access log's detail columns, which
-- may expire before the rows (column TTL). hash covers every field but signature; signature is Ed25519 over
-- hash with the key key_id.
CREATE TABLE IF NOT EXISTS ${ops}.manifests
(
    created_at      DateTime64(3, 'UTC'),
    batch_id        String,
    db_table        LowCardinality(String),
    kafka_topic     LowCardinality(String),
    kafka_partition Int32,
    first_offset    Int64,
    last_offset     Int64,
    rows            UInt64,
    group_days      Array(Date),
    group_sites     Array(String),
    group_rows      Array(UInt64),
    group_hashes    Array(String),
    group_detail_hashes Array(String),
    prev_hash       String,
    hash            String,
    key_id          String,
    signature       String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(created_at)
ORDER BY (db_table, kafka_topic, kafka_partition, first_offset, created_at)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS ${ops}.instance_keys
(
    key_id     String,
    public_pem String,
    first_seen DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY key_id;
