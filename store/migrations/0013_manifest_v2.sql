-- 0013: manifest hash version 2. version selects how a manifest's rows and
-- fields are hashed: 1 for every manifest written before this migration
-- (the access log's operation, opt_out, shipper_host and log_file were not
-- covered), 2 for every stored column but ingested_at. chain_seq orders a
-- chain without relying on offsets, which start again after a broker
-- restart. writer_seq numbers the inserts of manifests signed with one key;
-- writer_chains names the chains of the same insert, writer_prev and
-- writer_prev_chains every manifest of the key's previous insert, so that
-- a chain deleted whole is still named by the manifests signed with it or
-- after it.
ALTER TABLE ${ops}.manifests
    ADD COLUMN IF NOT EXISTS version UInt8 DEFAULT 1,
    ADD COLUMN IF NOT EXISTS chain_seq UInt64 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS writer_seq UInt64 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS writer_prev Array(String),
    ADD COLUMN IF NOT EXISTS writer_prev_chains Array(String),
    ADD COLUMN IF NOT EXISTS writer_chains Array(String);
