-- Layout A (Replicated databases). Do NOT use it together with connlog's
-- `clickhouse.cluster` setting (layout B, see README.md): pick one.
--
-- Run once, as the ClickHouse admin user, on either server of the two-site
-- cluster BEFORE the first `connlog migrate`:
--
--   clickhouse-client --user admin --multiquery < init.sql
--
-- It creates connlog's databases with the Replicated database engine on both
-- replicas. In a Replicated database every CREATE TABLE is replayed on every
-- replica, and `ENGINE = MergeTree` in connlog's migrations becomes
-- ReplicatedMergeTree automatically: the same migrations serve one node and
-- the cluster. connlog's `CREATE DATABASE IF NOT EXISTS` then finds them.
-- Arguments: Keeper path, shard name, replica name (from macros.xml).

CREATE DATABASE IF NOT EXISTS connlog_connections ON CLUSTER connlog
    ENGINE = Replicated('/clickhouse/databases/connlog_connections', '{shard}', '{replica}');
CREATE DATABASE IF NOT EXISTS connlog_access ON CLUSTER connlog
    ENGINE = Replicated('/clickhouse/databases/connlog_access', '{shard}', '{replica}');
CREATE DATABASE IF NOT EXISTS connlog_ops ON CLUSTER connlog
    ENGINE = Replicated('/clickhouse/databases/connlog_ops', '{shard}', '{replica}');
CREATE DATABASE IF NOT EXISTS connlog_stats ON CLUSTER connlog
    ENGINE = Replicated('/clickhouse/databases/connlog_stats', '{shard}', '{replica}');

-- Check after `connlog migrate` (both replicas, same tables, engine Replicated*):
--   SELECT hostName(), database, name, engine FROM clusterAllReplicas('connlog', system.tables)
--   WHERE database LIKE 'connlog_%' ORDER BY database, name, hostName();
