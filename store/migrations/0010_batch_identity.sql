-- 0010: a batch's identity survives broker restarts and topic re-creation.
-- An offset range alone does not name data: the embedded broker starts its
-- offsets again at 0 after a restart, and so does a Kafka topic deleted and
-- created again. Each intent now records the incarnation of the partition's
-- log it was cut from (the topic ID where connlog knows it) and a digest of
-- the batch's messages; both are part of the batch ID, hence of the
-- insert_deduplication_token, so that only the same data is dropped as a
-- replay. Rows written before have both empty and keep their old ID.

ALTER TABLE ${ops}.ingest_batches
    ADD COLUMN IF NOT EXISTS incarnation String DEFAULT '' AFTER last_offset,
    ADD COLUMN IF NOT EXISTS digest String DEFAULT '' AFTER incarnation;
