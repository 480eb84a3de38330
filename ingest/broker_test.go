package ingest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/connlog/connlog/ingest/broker"
	"github.com/connlog/connlog/ingest/kafkaclient"
	"github.com/connlog/connlog/store"
)

// wireClient is a kafka-go client of b authenticating as id (the zero SASL:
// none). Every request goes over the Kafka protocol.
func wireClient(t testing.TB, b *broker.Broker, id kafkaclient.SASL) *kafka.Client {
	t.Helper()
	tr, err := kafkaclient.NewTransport(id, kafkaclient.TLS{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &kafka.Client{Addr: kafka.TCP(b.Addrs()...), Timeout: 5 * time.Second, Transport: tr}
}

func produceOne(ctx context.Context, c *kafka.Client, topic string) error {
	resp, err := c.Produce(ctx, &kafka.ProduceRequest{Topic: topic, Partition: 0, RequiredAcks: kafka.RequireAll,
		Records: kafka.NewRecordReader(kafka.Record{Value: kafka.NewBytes([]byte(`203.0.113.9 - - [07/Dec/2016:11:05:07 +0100] "GET /forged HTTP/1.1" 200 1 "-" "x"`))})})
	if err != nil {
		return err
	}
	return resp.Error
}

func fetchOne(ctx context.Context, c *kafka.Client, topic string) error {
	resp, err := c.Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: 0, Offset: 0, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond})
	if err != nil {
		return err
	}
	return resp.Error
}

func joinGroup(ctx context.Context, c *kafka.Client, group string) error {
	resp, err := c.JoinGroup(ctx, &kafka.JoinGroupRequest{GroupID: group, SessionTimeout: 10 * time.Second, RebalanceTimeout: 10 * time.Second,
		ProtocolType: "consumer", Protocols: []kafka.GroupProtocol{{Name: "range", Metadata: kafka.GroupProtocolSubscription{Topics: []string{"nginx"}}}}})
	if err != nil {
		return err
	}
	return resp.Error
}

func createTopic(ctx context.Context, c *kafka.Client, topic string) error {
	resp, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}}})
	if err != nil {
		return err
	}
	return resp.Errors[topic]
}

// held is the sum of the high watermarks of the broker's topics: how many
// messages were ever accepted.
func accepted(b *broker.Broker) int64 {
	var n int64
	for _, t := range b.Topics() {
		for _, p := range b.Cluster().PartitionInfos(t) {
			n += p.HighWatermark
		}
	}
	return n
}

// TestBrokerAuthorization goes over the wire: without credentials, with a
// wrong password or kfake's default admin/admin, nothing is accepted; the
// shipper can produce to the topics and do nothing else; connlog's
// consumer identity can read and use its group, and not produce.
func TestBrokerAuthorization(t *testing.T) {
	b, err := broker.Start(t.Context(), broker.Config{Addr: "127.0.0.1:0", Topics: []string{"nginx", "nginx-combined"}, Partitions: 1}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	wrong := b.Shipper()
	wrong.Password += "x"
	for name, id := range map[string]kafkaclient.SASL{
		"no credentials":      {},
		"wrong password":      wrong,
		"shipper as PLAIN":    {Mechanism: kafkaclient.MechanismPlain, Username: b.Shipper().Username, Password: b.Shipper().Password},
		"kfake default admin": {Mechanism: kafkaclient.MechanismSCRAMSHA256, Username: "admin", Password: "admin"},
		"unknown user":        {Mechanism: kafkaclient.MechanismSCRAMSHA512, Username: "mallory", Password: b.Shipper().Password},
	} {
		c := wireClient(t, b, id)
		if err := produceOne(ctx, c, "nginx"); err == nil {
			t.Errorf("%s: produce accepted", name)
		}
		if err := fetchOne(ctx, c, "nginx"); err == nil {
			t.Errorf("%s: fetch accepted", name)
		}
		if err := createTopic(ctx, c, "evil"); err == nil {
			t.Errorf("%s: topic creation accepted", name)
		}
	}
	if n := accepted(b); n != 0 {
		t.Fatalf("%d messages accepted from clients without valid credentials", n)
	}

	shipper := wireClient(t, b, b.Shipper())
	for _, topic := range []string{"nginx", "nginx-combined"} {
		if err := produceOne(ctx, shipper, topic); err != nil {
			t.Fatalf("shipper: produce to %s: %v", topic, err)
		}
	}
	if err := produceOne(ctx, shipper, "other"); err == nil {
		t.Error("shipper: produce to another topic accepted")
	}
	if err := fetchOne(ctx, shipper, "nginx"); !errors.Is(err, kafka.TopicAuthorizationFailed) {
		t.Errorf("shipper: fetch: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	if err := joinGroup(ctx, shipper, DefaultGroupID); !errors.Is(err, kafka.GroupAuthorizationFailed) {
		t.Errorf("shipper: join connlog's consumer group: %v, want GROUP_AUTHORIZATION_FAILED", err)
	}
	if err := createTopic(ctx, shipper, "evil"); err == nil {
		t.Error("shipper: created a topic")
	}
	// Metadata asking for auto-creation creates nothing either.
	if _, err := shipper.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{"auto"}}); err != nil {
		t.Logf("metadata for an unknown topic: %v", err)
	}
	for _, topic := range []string{"other", "evil", "auto"} {
		if b.Cluster().TopicInfo(topic) != nil {
			t.Errorf("topic %s exists: the broker must create no topic", topic)
		}
	}

	consumer := wireClient(t, b, b.Consumer())
	if err := fetchOne(ctx, consumer, "nginx"); err != nil {
		t.Errorf("consumer: fetch: %v", err)
	}
	if err := produceOne(ctx, consumer, "nginx"); !errors.Is(err, kafka.TopicAuthorizationFailed) {
		t.Errorf("consumer: produce: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	if err := joinGroup(ctx, consumer, "someone-elses-group"); !errors.Is(err, kafka.GroupAuthorizationFailed) {
		t.Errorf("consumer: join a group that is not connlog's: %v, want GROUP_AUTHORIZATION_FAILED", err)
	}
	if n := accepted(b); n != 2 {
		t.Errorf("%d messages accepted, want the shipper's 2", n)
	}
}

// TestBrokerBoundsMemory publishes 16 times more than the broker may hold
// while a slow pipeline consumes: the broker holds at most about max_bytes
// (committed messages are dropped, producers are pushed back), every line
// is stored once, and once everything is committed little is held.
func TestBrokerBoundsMemory(t *testing.T) {
	const (
		maxBytes    = 1 << 20
		retainBytes = 256 << 10
		lineLen     = 300
		lines       = 16 * maxBytes / lineLen
	)
	reg := prometheus.NewRegistry()
	b := startBroker(t, broker.Config{Addr: "127.0.0.1:0", Topics: []string{"nginx"}, Partitions: 2, GroupID: "test",
		RetainBytes: retainBytes, MaxBytes: maxBytes, RetainAge: time.Hour}, reg)
	brokers := b.Addrs()

	// The real held bytes, sampled far more often than the broker measures.
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			var n int64
			for _, p := range b.Cluster().PartitionInfos("nginx") {
				n += p.NumBytes
			}
			if n > peak.Load() {
				peak.Store(n)
			}
		}
	}()

	sink := newTestSink()
	sink.delay = 100 * time.Millisecond // slower than the producer: back-pressure must kick in
	cfg := testConfig(brokers, "nginx")
	cfg.SASL = b.Consumer()
	cfg.BatchRows = 500
	p, err := New(cfg, sink, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	const format = `203.0.113.%d - - [07/Dec/2016:11:05:07 +0100] "GET /p/%06d?x=%s HTTP/1.1" 200 1 "-" "ua"`
	pad := strings.Repeat("a", lineLen-len(fmt.Sprintf(format, 100, 0, "")))
	all := make([]string, lines)
	for i := range all {
		all[i] = fmt.Sprintf(format, 100+i%100, i, pad)
	}
	publishLines(t, brokers, "nginx", all)
	sink.waitFor(t, "every line stored", func() bool { return sink.stored() == lines })
	// once everything is committed, the broker drops all of it (past
	// retain_bytes) or at least holds no more than retain_bytes
	deadline := time.Now().Add(10 * time.Second)
	for b.HeldBytes() > retainBytes && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-sampled

	if got := sink.stored(); got != lines || sink.dups != 0 || len(sink.quarantine) != 0 {
		t.Fatalf("%d lines stored (%d twice, %d quarantined), want %d once each", got, sink.dups, len(sink.quarantine), lines)
	}
	refused := metricValue(t, reg, "connlog_broker_produce_refused_total")
	// The gate counts every request it lets through until the next
	// measurement, so the bound holds exactly.
	if pk := peak.Load(); pk > maxBytes {
		t.Errorf("the broker held up to %d bytes, bound %d", pk, maxBytes)
	}
	if refused == 0 {
		t.Error("no produce was refused: the test did not reach the bound")
	}
	if h := b.HeldBytes(); h > retainBytes {
		t.Errorf("after everything was committed the broker holds %d bytes, want at most retain_bytes %d", h, retainBytes)
	}
	if h := metricValue(t, reg, "connlog_broker_held_bytes"); int64(h) != b.HeldBytes() {
		t.Errorf("connlog_broker_held_bytes = %v, HeldBytes %d", h, b.HeldBytes())
	}
	t.Logf("%d bytes published; peak held %d (max_bytes %d), %v produce requests refused, %d held at the end",
		lines*lineLen, peak.Load(), maxBytes, refused, b.HeldBytes())
}

// TestBrokerDropsOnlyCommitted: with no consumer nothing is dropped however
// long it waits; after a commit, the committed messages go once older than
// retain_age and the uncommitted ones stay.
func TestBrokerDropsOnlyCommitted(t *testing.T) {
	b := startBroker(t, broker.Config{Addr: "127.0.0.1:0", Topics: []string{"nginx"}, Partitions: 1, GroupID: "test",
		RetainBytes: 1 << 30, RetainAge: 300 * time.Millisecond}, nil)
	brokers := b.Addrs()
	publishLines(t, brokers, "nginx", genCombined(100))
	time.Sleep(time.Second)
	if info := b.Cluster().PartitionInfo("nginx", 0); info.LogStartOffset != 0 {
		t.Fatalf("uncommitted messages dropped: log starts at %d", info.LogStartOffset)
	}

	c := wireClient(t, b, b.Consumer())
	resp, err := c.OffsetCommit(t.Context(), &kafka.OffsetCommitRequest{GroupID: "test", GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{"nginx": {{Partition: 0, Offset: 60}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := resp.Topics["nginx"][0].Error; err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.Cluster().PartitionInfo("nginx", 0).LogStartOffset == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	info := b.Cluster().PartitionInfo("nginx", 0)
	if info.LogStartOffset == 0 || info.LogStartOffset > 60 {
		t.Fatalf("log starts at %d after a commit at 60 older than retain_age: want the committed messages dropped, no more", info.LogStartOffset)
	}
	if info.HighWatermark != 100 || info.NumBytes == 0 {
		t.Fatalf("high watermark %d, %d bytes: the uncommitted messages must stay", info.HighWatermark, info.NumBytes)
	}
}

func TestBrokerUsersFiles(t *testing.T) {
	dir := t.TempDir()
	u, created, err := broker.LoadOrCreateUsers(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(created) != 2 {
		t.Fatalf("created %v, want both files", created)
	}
	for _, f := range []string{broker.ShipperCredentialsFile, broker.ConsumerCredentialsFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", f, fi.Mode().Perm())
		}
	}
	if u.Shipper.Username == u.Consumer.Username || u.Shipper.Password == u.Consumer.Password || len(u.Shipper.Password) < 40 {
		t.Errorf("weak or shared identities: %s / %s", u.Shipper.Username, u.Consumer.Username)
	}
	again, created, err := broker.LoadOrCreateUsers(dir)
	if err != nil || len(created) != 0 || again != u {
		t.Fatalf("second start: created %v, err %v, same users %v", created, err, again == u)
	}
	if err := os.Chmod(filepath.Join(dir, broker.ShipperCredentialsFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := broker.LoadOrCreateUsers(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a world-readable credentials file: %v, want refused", err)
	}
	if fmt.Sprint(u.Shipper) == "" || strings.Contains(fmt.Sprintf("%v %+v", u, u), string(u.Shipper.Password)) {
		t.Error("formatting the identities prints a password")
	}
}

func TestSecurityValidate(t *testing.T) {
	dir := t.TempDir()
	pki := newTestPKI(t, dir)
	for _, c := range []struct {
		name string
		sasl kafkaclient.SASL
		tls  kafkaclient.TLS
		want string // "" valid
	}{
		{name: "zero"},
		{name: "scram", sasl: kafkaclient.SASL{Mechanism: "scram-sha-512", Username: "u", Password: "p"}},
		{name: "plain", sasl: kafkaclient.SASL{Mechanism: "PLAIN", Username: "u", Password: "p"}},
		{name: "unknown mechanism", sasl: kafkaclient.SASL{Mechanism: "GSSAPI", Username: "u", Password: "p"}, want: `"GSSAPI" is not PLAIN`},
		{name: "no user", sasl: kafkaclient.SASL{Mechanism: "PLAIN", Password: "p"}, want: "sasl.username: required"},
		{name: "no password", sasl: kafkaclient.SASL{Mechanism: "PLAIN", Username: "u"}, want: "sasl.password: required"},
		{name: "password without mechanism", sasl: kafkaclient.SASL{Password: "p"}, want: "without sasl.mechanism"},
		{name: "tls", tls: kafkaclient.TLS{Enabled: true, CAFile: pki.ca, CertFile: pki.clientCert, KeyFile: pki.clientKey, ServerName: "broker"}},
		{name: "tls system roots", tls: kafkaclient.TLS{Enabled: true}},
		{name: "ca missing", tls: kafkaclient.TLS{Enabled: true, CAFile: filepath.Join(dir, "none.pem")}, want: "tls.ca_file: open"},
		{name: "ca not PEM", tls: kafkaclient.TLS{Enabled: true, CAFile: pki.notPEM}, want: "tls.ca_file"},
		{name: "cert without key", tls: kafkaclient.TLS{Enabled: true, CertFile: pki.clientCert}, want: "tls.key_file: required"},
		{name: "key without cert", tls: kafkaclient.TLS{Enabled: true, KeyFile: pki.clientKey}, want: "tls.cert_file: required"},
		{name: "key of another cert", tls: kafkaclient.TLS{Enabled: true, CertFile: pki.clientCert, KeyFile: pki.serverKey}, want: "tls.cert_file, tls.key_file"},
		{name: "files without enabled", tls: kafkaclient.TLS{CAFile: pki.ca}, want: "tls.enabled is false"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := Config{Brokers: []string{"k:9093"}, Topics: []string{"nginx"}, SASL: c.sasl, TLS: c.tls}
			err := cfg.Validate()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
	if s := fmt.Sprint(kafkaclient.SASL{Password: store.Secret("hunter2")}); strings.Contains(s, "hunter2") {
		t.Errorf("a kafkaclient.SASL identity prints its password: %s", s)
	}
}

// TestBrokerAdvertisesSASLHandshakeV0: librdkafka-based shippers only
// authenticate to a broker whose ApiVersions lists SaslHandshake v0 (see
// advertiseSASLHandshakeV0); deploy's shipper tests run the real ones.
func TestBrokerAdvertisesSASLHandshakeV0(t *testing.T) {
	b := startBroker(t, broker.Config{Addr: "127.0.0.1:0", Topics: []string{"nginx"}, Partitions: 1}, nil)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, v := range []int16{0, 3} {
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = v
		resp, err := req.RequestWith(t.Context(), cl)
		if err != nil {
			t.Fatal(err)
		}
		var found bool
		for _, k := range resp.ApiKeys {
			if k.ApiKey == int16(kmsg.SASLHandshake) {
				found = true
				if k.MinVersion != 0 || k.MaxVersion != 1 {
					t.Errorf("ApiVersions v%d: SaslHandshake %d..%d, want 0..1", v, k.MinVersion, k.MaxVersion)
				}
			}
		}
		if !found || len(resp.ApiKeys) < 40 {
			t.Errorf("ApiVersions v%d: %d keys, SaslHandshake listed %v", v, len(resp.ApiKeys), found)
		}
	}
}
