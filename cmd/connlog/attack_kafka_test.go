package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connlog/connlog/ingest/broker"
	"github.com/connlog/connlog/ingest/kafkaclient"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// The attack suite's Kafka part: a local process that can reach the
// embedded broker of `connlog serve` (embedded defaults) tries to forge
// connection records and to read or disturb the stream, over the real
// Kafka protocol. Every attempt must be refused and nothing stored.

// attackClient is a kafka-go client of addr with the given SASL mechanism
// (nil: none).
func attackClient(t *testing.T, addr string, m sasl.Mechanism) *kafka.Client {
	t.Helper()
	tr := &kafka.Transport{SASL: m, DialTimeout: 5 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return &kafka.Client{Addr: kafka.TCP(addr), Timeout: 5 * time.Second, Transport: tr}
}

func scram512(t *testing.T, user, pass string) sasl.Mechanism {
	t.Helper()
	m, err := scram.Mechanism(scram.SHA512, user, pass)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestAttackEmbeddedKafka(t *testing.T) {
	in := startConnlog(t, "")
	shipper := in.shipper()
	consumer, err := kafkaclient.ReadSASLFile(filepath.Join(in.dataDir, broker.ConsumerCredentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{broker.ShipperCredentialsFile, broker.ConsumerCredentialsFile} {
		fi, err := os.Stat(filepath.Join(in.dataDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", f, fi.Mode().Perm())
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	// A forged line: a connection that never happened, from a network no
	// legitimate line in this test uses.
	forged := kafka.Record{Value: kafka.NewBytes([]byte(`198.51.100.66 - - [` + time.Now().UTC().Format("02/Jan/2006:15:04:05 -0700") + `] "GET /forged HTTP/1.1" 200 1 "-" "attacker"`))}
	produce := func(c *kafka.Client, topic string) error {
		resp, err := c.Produce(ctx, &kafka.ProduceRequest{Topic: topic, Partition: 0, RequiredAcks: kafka.RequireAll, Records: kafka.NewRecordReader(forged)})
		if err != nil {
			return err
		}
		return resp.Error
	}
	fetch := func(c *kafka.Client) error {
		resp, err := c.Fetch(ctx, &kafka.FetchRequest{Topic: "nginx", Partition: 0, Offset: 0, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond})
		if err != nil {
			return err
		}
		return resp.Error
	}

	impostors := map[string]sasl.Mechanism{
		"no credentials":              nil,
		"wrong password":              scram512(t, shipper.Username, string(shipper.Password)+"x"),
		"another user's password":     scram512(t, consumer.Username, string(shipper.Password)),
		"guessed user":                scram512(t, "admin", "admin"),
		"shipper's password as PLAIN": plain.Mechanism{Username: shipper.Username, Password: string(shipper.Password)},
	}
	if m, err := scram.Mechanism(scram.SHA256, "admin", "admin"); err == nil {
		impostors["kfake's default admin"] = m
	}
	for name, m := range impostors {
		c := attackClient(t, in.kafka, m)
		if err := produce(c, "nginx"); err == nil {
			t.Errorf("%s: produce accepted", name)
		}
		if err := fetch(c); err == nil {
			t.Errorf("%s: fetch accepted", name)
		}
	}

	// The shipper identity: produce to the ingest topic only.
	sc := attackClient(t, in.kafka, scram512(t, shipper.Username, string(shipper.Password)))
	if err := fetch(sc); !errors.Is(err, kafka.TopicAuthorizationFailed) {
		t.Errorf("shipper: fetch: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	// Refused for want of authorization, not for some group state: the
	// group is connlog's, live, and a join would start a rebalance.
	join, err := sc.JoinGroup(ctx, &kafka.JoinGroupRequest{GroupID: "connlog", SessionTimeout: 10 * time.Second, RebalanceTimeout: 10 * time.Second,
		ProtocolType: "consumer", Protocols: []kafka.GroupProtocol{{Name: "range", Metadata: kafka.GroupProtocolSubscription{Topics: []string{"nginx"}}}}})
	if err == nil {
		err = join.Error
	}
	if !errors.Is(err, kafka.GroupAuthorizationFailed) {
		t.Errorf("shipper: join connlog's consumer group: %v, want GROUP_AUTHORIZATION_FAILED", err)
	}
	commit, err := sc.OffsetCommit(ctx, &kafka.OffsetCommitRequest{GroupID: "connlog", GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{"nginx": {{Partition: 0, Offset: 1 << 40}}}})
	if err == nil && len(commit.Topics["nginx"]) > 0 {
		err = commit.Topics["nginx"][0].Error
	}
	if !errors.Is(err, kafka.GroupAuthorizationFailed) {
		t.Errorf("shipper: commit an offset for connlog's group (lines would be skipped): %v, want GROUP_AUTHORIZATION_FAILED", err)
	}
	if err := produce(sc, "other"); err == nil {
		t.Error("shipper: produce to another topic accepted")
	}
	if resp, err := sc.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: "evil", NumPartitions: 1, ReplicationFactor: 1}}}); err == nil && resp.Errors["evil"] == nil {
		t.Error("shipper: created a topic")
	}
	// connlog's own identity reads; it cannot write.
	cc := attackClient(t, in.kafka, scram512(t, consumer.Username, string(consumer.Password)))
	if err := produce(cc, "nginx"); err == nil {
		t.Error("consumer identity: produce accepted")
	}

	// Positive control: the shipper's lines are stored, so forged lines
	// that had been accepted (earlier in the same partitions) would be too.
	base := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	publish(t, in.kafka, shipper, "nginx", genLines(3, base))
	deadline := time.Now().Add(60 * time.Second)
	for len(in.access("10.0.0.0/8", base.Add(-time.Hour), base.Add(time.Hour), 100)) < 3 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if n := len(in.access("10.0.0.0/8", base.Add(-time.Hour), base.Add(time.Hour), 100)); n != 3 {
		t.Fatalf("the shipper's 3 lines: %d stored", n)
	}
	time.Sleep(time.Second) // one more flush interval for anything behind them
	if rows := in.access("198.51.100.0/24", base.Add(-24*time.Hour), base.Add(time.Hour), 100); len(rows) != 0 {
		t.Errorf("%d forged rows stored: %+v", len(rows), rows)
	}
	for _, secret := range []string{string(shipper.Password), string(consumer.Password)} {
		if strings.Contains(in.stderr.String(), secret) {
			t.Error("a Kafka password appears in connlog's log")
		}
	}
}
