// Package ingest turns Kafka messages carrying web-server access-log lines
// into store rows.
//
// It holds the log-line parsers ([ParseCombined] and the [Parser] registry),
// the consumer [Pipeline] (fetch → parse → batch → write → commit), an
// embedded Kafka-protocol [Broker] for single-host evaluation and tests, and
// [Publish], which sends lines to a topic.
//
// Guarantees:
//
//   - Nothing is lost: the Pipeline commits a partition's offset only after
//     its [Sink] acknowledged every row up to that offset. While the sink
//     fails, the Pipeline retries the same batch with capped exponential
//     backoff; it never skips a batch.
//   - Nothing is dropped silently: a message that cannot be parsed, or is
//     longer than Config.MaxLineBytes, is written to quarantine with its
//     topic, partition, offset, the reason and a copy of its bytes, and it is
//     counted. It never blocks its partition.
//   - Bounded memory: fetched messages wait in a bounded queue; when the sink
//     is slow, fetching stops (back-pressure) instead of buffering.
//   - Parse errors never quote the line: a [*ParseError] names the field, the
//     byte position and the reason, so it can be logged without leaking IP
//     addresses. Logs carry offsets, never lines.
//
// Parsed strings alias the bytes of the line they came from (no copy on the
// hot path), so a [store.Hit] is valid only as long as those bytes are not
// modified or reused.
package ingest
