package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connlog/connlog/ingest/broker"
)

// TestPublishUsesTheShipperIdentityOfTheDataDir: `connlog publish` against
// the embedded broker needs no credential on the command line (it reads
// data_dir's shipper file), and without one the broker refuses the lines.
func TestPublishUsesTheShipperIdentityOfTheDataDir(t *testing.T) {
	dataDir := t.TempDir()
	users, _, err := broker.LoadOrCreateUsers(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.Start(t.Context(), broker.Config{Addr: "127.0.0.1:0", Topics: []string{"nginx"}, Partitions: 1, Users: users}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	lines := "203.0.113.7 - - [07/Dec/2016:11:05:07 +0100] \"GET / HTTP/1.1\" 200 1 \"-\" \"x\"\n203.0.113.8 - - [07/Dec/2016:11:05:08 +0100] \"GET / HTTP/1.1\" 200 1 \"-\" \"x\"\n"
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
		defer cancel()
		var stderr bytes.Buffer
		err := cmdPublish(ctx, append([]string{"-brokers", b.Addrs()[0], "-topic", "nginx"}, args...), strings.NewReader(lines), &stderr)
		return stderr.String(), err
	}
	if out, err := run("-data-dir", dataDir); err != nil || !strings.Contains(out, "published 2 lines") {
		t.Fatalf("with the data directory's shipper identity: %v %s", err, out)
	}
	if out, err := run("-data-dir", t.TempDir()); err == nil {
		t.Errorf("without credentials: accepted (%s)", out)
	}
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte(string(users.Shipper.Password)+"x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run("-sasl-mechanism", "SCRAM-SHA-512", "-sasl-username", users.Shipper.Username, "-sasl-password-file", pw); err == nil {
		t.Errorf("with a wrong password: accepted (%s)", out)
	}
	if out, err := run("-credentials", filepath.Join(dataDir, broker.ConsumerCredentialsFile)); err == nil {
		t.Errorf("as connlog's consumer identity: accepted (%s)", out)
	}
}
