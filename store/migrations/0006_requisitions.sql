-- 0006: the requisition register. A requisition is recorded once, when an
-- officer enters it, and never changed: what happens to it afterwards (each
-- run that produced an export package, the answer sent to the authority) is
-- appended to requisition_events. The packages themselves are kept in
-- requisition_exports, byte for byte, so that a download gives exactly the
-- package whose SHA-256 the register and the audit trail recorded.
--
-- The register and its events are kept for the audit lifetime (3 years).
-- The packages carry connection records, so they are kept no longer than the
-- records themselves (12 months); their SHA-256 stays in the events.

CREATE TABLE IF NOT EXISTS ${ops}.requisitions
(
    id              String,
    created_at      DateTime64(3, 'UTC'),
    created_by      String,
    authority       String,
    officer_name    String,
    officer_service String,
    article         LowCardinality(String),
    article_text    String,
    procedure_ref   String,
    received_on     Date,
    selectors       String,
    purpose         String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(created_at)
ORDER BY (id)
TTL toDateTime(created_at) + INTERVAL 3 YEAR DELETE
SETTINGS ttl_only_drop_parts = 1, fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS ${ops}.requisition_events
(
    requisition_id  String,
    time            DateTime64(3, 'UTC'),
    kind            Enum8('run' = 1, 'answered' = 2),
    actor           String,
    export_sha256   String,
    rows            UInt64,
    sent_at         DateTime64(3, 'UTC'),
    sent_how        String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (requisition_id, time)
TTL toDateTime(time) + INTERVAL 3 YEAR DELETE
SETTINGS ttl_only_drop_parts = 1, fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS ${ops}.requisition_exports
(
    requisition_id  String,
    export_sha256   String,
    created_at      DateTime64(3, 'UTC'),
    package         String CODEC(ZSTD(3))
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(created_at)
ORDER BY (requisition_id, created_at)
TTL toDateTime(created_at) + INTERVAL 12 MONTH DELETE
SETTINGS ttl_only_drop_parts = 1, fsync_after_insert = 1, fsync_part_directory = 1;
