// Package broker is connlog's embedded Kafka-protocol broker, for
// single-host evaluation and tests: an in-memory kfake cluster that
// [Start] runs on a loopback port (Config.Addr) with the topics of the
// configuration and nothing else.
//
// It accepts only authenticated clients (SCRAM-SHA-512): a shipper
// identity that may only produce to its topics and connlog's consumer
// identity that may only read them and use its group ([Users], kept in the
// data directory by [LoadOrCreateUsers] in librdkafka's property format).
// It creates no topic, drops only messages its consumer group has
// committed (past Config.RetainBytes or RetainAge), and refuses produce
// with a retriable error past Config.MaxBytes; connlog_broker_held_bytes
// and connlog_broker_produce_refused_total show it. On shutdown,
// [Broker.Drain] waits for the pipeline to commit what the broker holds,
// and [Broker.Backlog] says what would be lost. [Broker.TopicIncarnation]
// names a topic's current life, for the pipeline's batch identities.
//
// The pipeline (package ingest) consumes from it like from any Kafka; this
// package does not depend on ingest.
package broker
