// Package kafkaclient is how connlog connects to Kafka as a client: the
// SASL identity ([SASL]: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) and TLS 1.2+
// settings ([TLS]) of the pipeline's consumer and of [Publish], the dialer
// and transport built from them ([NewDialer], [NewTransport]), and the
// credential files in librdkafka's property format ([ReadSASLFile],
// [WriteSASLFile]) that the embedded broker's identities are kept in.
//
// [Publish] sends the lines of a reader to a topic, one message each: what
// `connlog publish` and the end-to-end tests run. A [Fetcher] reads one
// partition: what the pipeline consumes with.
package kafkaclient
