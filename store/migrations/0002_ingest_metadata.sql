-- 0002: what the ingest formats carry that 0001 has no column for.
-- operation: the kind of request (read/create/modify/delete), classified by
--   ingest by method or per site and path prefix; rows written before this
--   migration read as 'read'.
-- opt_out: the request carried "Sec-GPC: 1" or "DNT: 1" (when the log
--   format records those headers); audience statistics skip such requests.
-- shipper_host, log_file: where the line came from, from the shipper's
--   envelope (Vector, Filebeat, Fluent Bit) or syslog header.
ALTER TABLE ${access}.access_log
    ADD COLUMN IF NOT EXISTS operation Enum8('read' = 1, 'create' = 2, 'modify' = 3, 'delete' = 4) DEFAULT 'read',
    ADD COLUMN IF NOT EXISTS opt_out Bool DEFAULT false,
    ADD COLUMN IF NOT EXISTS shipper_host LowCardinality(String),
    ADD COLUMN IF NOT EXISTS log_file LowCardinality(String) CODEC(ZSTD(1));
