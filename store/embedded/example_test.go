package embedded_test

import (
	"context"
	"log"
	"log/slog"
	"net"
	"os"
	"os/signal"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/connlog/connlog/store/embedded"
)

// Example shows embedded mode: open the engine, serve it on loopback and
// point clickhouse-go at it over HTTP.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))

	engine, err := embedded.Open(embedded.Config{Dir: "/var/lib/connlog/clickhouse"}, logger)
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = engine.Serve(ctx, ln) }()

	conn, err := clickhouse.Open(&clickhouse.Options{Protocol: clickhouse.HTTP, Addr: []string{ln.Addr().String()}})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	var version string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		log.Fatal(err)
	}
	logger.Info("embedded ClickHouse ready", "version", version)
}
