package kafkaclient

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/segmentio/kafka-go"
)

// publishChunk is the number of messages per synchronous WriteMessages call.
const publishChunk = 1000

// PublishConfig says where [Publish] sends lines and how it authenticates.
type PublishConfig struct {
	// Brokers are the bootstrap addresses, "host:port".
	Brokers []string
	// Topic receives one message per line.
	Topic string
	// SASL is the producer's identity; for the embedded broker, its
	// shipper identity (broker.Broker.Shipper, or the file [ReadSASLFile] reads).
	SASL SASL
	// TLS encrypts the connections.
	TLS TLS
}

// Publish sends each line of r as one message to cfg.Topic, through a
// kafka-go Writer with batching and RequiredAcks=all, creating the topic if
// the brokers allow it (the embedded broker does not). Trailing "\n" /
// "\r\n" are stripped and empty lines are skipped. A retriable refusal
// (e.g. the embedded broker's back-pressure when it is full) is retried
// for about a minute. It returns the number of messages acknowledged; on
// error, lines after that count may or may not have been written. Used by
// `connlog publish` and by end-to-end tests.
func Publish(ctx context.Context, cfg PublishConfig, r io.Reader) (int, error) {
	transport, err := NewTransport(cfg.SASL, cfg.TLS)
	if err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}
	w := &kafka.Writer{
		Addr:                   kafka.TCP(cfg.Brokers...),
		Topic:                  cfg.Topic,
		Transport:              transport,
		Balancer:               &kafka.RoundRobin{},
		RequiredAcks:           kafka.RequireAll,
		BatchSize:              publishChunk,
		BatchBytes:             16 << 20,
		BatchTimeout:           10 * time.Millisecond,
		MaxAttempts:            60,
		WriteBackoffMax:        time.Second,
		AllowAutoTopicCreation: true,
	}
	sent, err := publish(ctx, w, r)
	if cerr := w.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close writer: %w", cerr)
	}
	return sent, err
}

func publish(ctx context.Context, w *kafka.Writer, r io.Reader) (int, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	sent := 0
	chunk := make([]kafka.Message, 0, publishChunk)
	send := func() error {
		if len(chunk) == 0 {
			return nil
		}
		if err := w.WriteMessages(ctx, chunk...); err != nil {
			return fmt.Errorf("publish to %s after %d messages: %w", w.Topic, sent, err)
		}
		sent += len(chunk)
		chunk = chunk[:0]
		return nil
	}
	for {
		line, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return sent, fmt.Errorf("read input after %d lines: %w", sent, err)
		}
		if l := bytes.TrimRight(line, "\r\n"); len(l) > 0 {
			chunk = append(chunk, kafka.Message{Value: l})
			if len(chunk) == publishChunk {
				if err := send(); err != nil {
					return sent, err
				}
			}
		}
		if err != nil { // io.EOF
			return sent, send()
		}
	}
}
