// Package ingest turns Kafka messages carrying web-server access-log lines
// into store rows: the consumer [Pipeline] (fetch → parse → batch → write →
// commit; pipeline.go, with its [Config] in config.go and its metrics in
// metrics.go). The lines are read by package [logline] (formats, envelopes,
// syslog headers, trusted proxies, redaction, classification); what each
// kind of awkward line becomes is written there. [WithAudience] wraps the
// [Sink] so that each batch also carries its audience statistics rows
// (audience.go); dedup.go drops lines a shipper sent twice (see "Shipper
// duplicates" below).
//
// Kafka security: the Pipeline speaks SASL (PLAIN, SCRAM-SHA-256,
// SCRAM-SHA-512) and TLS 1.2+ as [Config].SASL and [Config].TLS say
// (package [kafkaclient], which also holds Publish). The embedded broker
// for single-host evaluation and tests is package ingest/broker; ingest
// does not depend on it: connlog serve passes the broker's topic
// incarnations with [Incarnations].
//
// Guarantees:
//
//   - Nothing is lost: the Pipeline commits a partition's offset only after
//     its [Sink] acknowledged every row up to that offset. While the sink
//     fails, the Pipeline retries the same batch with capped exponential
//     backoff; it never skips a batch.
//   - Exactly once (see "Exactly-once design" below): a crash at any
//     instant, a ClickHouse error or timeout, or a rebalance leaves one copy
//     of every line in every table that store.Write fills.
//   - Nothing is dropped silently: a message that cannot be parsed, is
//     longer than Config.MaxLineBytes, carries control bytes (binary) or is
//     not valid UTF-8 is written to quarantine with its topic, partition,
//     offset, the reason and a copy of its bytes (secrets redacted as in a
//     parsed line: [logline.Parser.RedactRaw]), and it is counted. It never
//     blocks its partition.
//   - Bounded memory: each assigned partition has a bounded fetch (kafka-go
//     MaxBytes = Config.FetchMaxBytes, 100 prefetched messages), a bounded
//     queue (Config.QueueMessages) and one batch (Config.BatchRows,
//     Config.BatchBytes); when the store is slow or down, fetching stops
//     (back-pressure) instead of buffering. connlog_ingest_queued_messages
//     shows the queues.
//   - Graceful stop: when Run's context is cancelled, every partition worker
//     stops fetching, writes and commits its batch within
//     Config.ShutdownTimeout, then the member leaves the group.
//
// # Exactly-once design
//
// A batch holds messages of one partition only, a contiguous range of
// offsets [first, last], and its [store.Batch.ID] is "topic/partition/
// first-last/incarnation/digest" ([store.BatchRange.ID]): an offset range
// alone does not name data, because the embedded broker's offsets start
// again at 0 after a restart, and so do those of a Kafka topic deleted and
// created again. The incarnation is the topic's ID where the Pipeline knows
// it ([Incarnations]: the embedded broker; kafka-go does not expose topic
// IDs of an external Kafka), the digest a SHA-256 of the batch's messages
// (offset, timestamp, bytes). A replay is recognised as one only when it is
// the same data; a recorded range that comes back with other content is
// new data: it is stored, counted in
// connlog_ingest_offset_regressions_total and logged as a warning, and so
// is a partition whose offsets go back while it is consumed.
//
// The batches of the partitions an instance consumes are written together,
// in write rounds (rounds.go): when one is due, the others are handed over
// as they stand, and the round makes one insert per table for all of them
// (a quarter of the parts with four partitions), while the workers go on
// consuming into their next batches. A worker prepares its sealed batch
// itself ([Preparer]: the store encodes the rows and hashes the manifests,
// [WithAudience] computes the audience rows) while the round before is
// still being written, so that a round only sends. The store derives the round's
// insert_deduplication_token from the batches' IDs (a batch written alone
// uses its ID), and the tables keep the tokens of their last 10,000 inserts
// (non_replicated_deduplication_window), so retrying a round stores
// nothing new, the audience statistics included (one insert for the
// round's batches, with a marker cell per batch).
//
// The ID only helps if a batch written again has the same boundaries, and
// boundaries depend on timing (rows, bytes, flush interval). So, per batch:
//
//  1. record the range in the intent log, ops.ingest_batches
//     (consumer_group, topic, partition, first_offset, last_offset,
//     incarnation, digest), and wait for ClickHouse's acknowledgement
//     ([Journal], *store.Store);
//  2. write the batch (in its round), retrying the same round until it is
//     acknowledged;
//  3. commit last+1 to the consumer group (a partition's batches commit in
//     order: a batch is handed over only once the one before is settled).
//
// When a partition is assigned (start, restart after kill -9, rebalance),
// its worker reads the recorded ranges of the log now behind it whose last
// offset is at or after the committed offset and rebuilds those batches
// with exactly those boundaries, whatever the current limits, and writes
// each alone ([store.Batch.Rebuilt]): the round that stored it, wholly or
// in part, had a token of its own, so the store looks for the batch's rows
// in each table by their Kafka source and message time and inserts only
// the missing ones; its audience rows go only to the months and
// statistics tables where its marker cells are missing. Before writing a rebuilt batch the worker
// asks the store how many of its rows it already holds
// ([Journal].StoredRows): those are counted as result="already_stored",
// not as stored, so the stored count is what the engine did not hold yet. A crash before step 1
// leaves nothing to undo; between 1 and 3 the batch is rebuilt; after 3 it
// is not consumed again. A rebuilt batch is only written whole: if the
// partition is released while one is half-filled, it is left to the next
// owner. Rows carry the Kafka message time as ingested_at (not the clock),
// so a rebuilt batch is the same rows.
//
// Rebalances: each partition is consumed by a worker started in a kafka-go
// consumer-group generation; the member rejoins the group only after all
// its workers returned, and a worker returns only after writing and
// committing its batch (bounded by Config.ShutdownTimeout, below the
// rebalance timeout of ShutdownTimeout+10s). So the next owner reads the
// intent log after the previous owner's last intent. Commits carry the
// generation, so a stale member's commit is refused.
//
// Limits, stated honestly:
//
//   - The deduplication window is 10,000 inserts per table: a batch rebuilt
//     after more than 10,000 later inserts into the same table (days of
//     downtime at small batches) would be stored twice. Intents expire after
//     7 days.
//   - A member frozen (SIGSTOP, VM pause) longer than the session timeout
//     while writing can resume and write a batch that the next owner has
//     already cut differently; Kafka has no fencing for an external sink.
//   - If ClickHouse records a token in its deduplication log before the
//     part is durable, a crash of ClickHouse itself between the two could
//     make it drop the rebuilt batch as a duplicate. In embedded mode
//     ClickHouse runs in connlog's process, so a kill -9 of connlog is such
//     a crash; the window is tiny and the crash test (500,000 lines, 20
//     kill -9) has not hit it, but it is not excluded.
//   - Each round costs one more small insert (the intents). With little
//     traffic, raise Config.FlushInterval so that ClickHouse does not
//     receive too many small inserts.
//   - A stored row is recognised by its Kafka source, message time and (for
//     hits) event time: a row of an earlier incarnation of the log at the
//     same offset with the same two times would be taken for the rebuilt
//     batch's own and not stored again.
//   - Without a Journal (a Sink that is not *store.Store), retries within a
//     process are still exactly once, but batches are not rebuilt after a
//     restart.
//
// Shipper duplicates: when lines carry $request_id, the Pipeline remembers
// the request ids of the last Config.DedupRequestIDs stored lines
// (process-wide, all partitions) and does not store a line whose id it has
// seen: it is counted as result="duplicate". This catches rsyslog's resends
// after a broker outage, which arrive within minutes. It does not survive a
// restart and is per process: two instances, or a resend older than the
// window, can still store a request twice (the rows have the same
// request_id, so a query can tell).
//
// Parse errors never quote the line ([logline.ParseError]), and logs carry
// offsets, never lines.
//
// Metrics (no label carries an address, a path or a user agent; site only
// for the sites listed in Config.Sites, others as "other"):
// connlog_ingest_lines_total{topic,result} (stored, quarantined,
// already_stored, duplicate, redacted),
// connlog_ingest_offset_regressions_total{topic},
// connlog_ingest_lag_messages{topic,partition},
// connlog_ingest_committed_offset{topic,partition},
// connlog_ingest_batch_rows, connlog_ingest_batch_bytes,
// connlog_ingest_write_duration_seconds, connlog_ingest_write_retries_total,
// connlog_ingest_rebuilt_batches_total, connlog_ingest_queued_messages,
// connlog_ingest_partitions, connlog_ingest_last_event_timestamp_seconds{site}.
package ingest
