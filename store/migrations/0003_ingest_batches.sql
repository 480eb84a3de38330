-- 0003: the ingest intent log. Before ingest writes a batch of one Kafka
-- partition it records the batch's offset range here; after a crash, the
-- next owner of the partition reads the ranges at or after the committed
-- offset and rebuilds its batches with exactly those boundaries, so their
-- insert_deduplication_token (topic/partition/first-last) matches and
-- ClickHouse drops what was already inserted. Rows are only useful until the
-- offsets are committed; they expire after 7 days.

CREATE TABLE IF NOT EXISTS ${ops}.ingest_batches
(
    consumer_group  String,
    kafka_topic     LowCardinality(String),
    kafka_partition Int32,
    first_offset    Int64,
    last_offset     Int64,
    written_at      DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(written_at)
ORDER BY (consumer_group, kafka_topic, kafka_partition, first_offset, last_offset)
TTL toDateTime(written_at) + INTERVAL 7 DAY DELETE
SETTINGS ttl_only_drop_parts = 0;
