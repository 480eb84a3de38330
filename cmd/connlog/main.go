// Command connlog collects nginx connection logs from Kafka into
// ClickHouse and serves them to security staff. See README.md and
// docs/architecture.md.
//
// Size: about 3,100 lines of non-test code, above the project's 1,500 per
// package: it is the wiring (serve.go builds every component by hand), the
// configuration with its renamed keys (config.go, deprecated.go) and one
// file per CLI command; none of it is imported by another package.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `connlog: nginx connection logs from Kafka into ClickHouse, with retention and audit.

Usage:
  connlog serve    [-config FILE]   run ingest and the query API (embedded engines by default)
  connlog migrate  [-config FILE]   apply schema migrations and exit
  connlog parse    [-format NAME]   parse log lines from stdin, print one JSON object per line
  connlog publish  [-brokers ADDR] [-topic NAME]   publish stdin lines to Kafka, one message per line
  connlog search   -ip IP|CIDR -since 24h -purpose REF [-connections] [-json|-csv]   query the API
  connlog retention [-config FILE] [-json] [-enforce]   retention report: policy vs what is stored
  connlog verify   [-config FILE]   check the signed batch manifests against the stored rows
  connlog key      [-config FILE]   print the instance's public signing key and key id
  connlog verify-export FILE.zip -key PUBLIC.pem   check a requisition export package offline
  connlog token create -name NAME -role ROLE [-sites a,b]   make an API token, print it once
  connlog config check [-config FILE]   validate the configuration: every problem, every old key to rename
  connlog config reference   every setting: type, default, environment variable, meaning
  connlog version

The configuration file may also be given by $CONNLOG_CONFIG; every setting can be
overridden by an environment variable, e.g. CONNLOG_KAFKA_BROKERS=k1:9092,k2:9092.

retention, verify, key and token create also run while serve does: the running
instance answers them on data_dir/admin.sock and audits each one (-purpose REF
states why; default "operator command").
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		err = cmdServe(ctx, rest, stdout, stderr)
	case "migrate":
		err = cmdMigrate(ctx, rest, stdout)
	case "parse":
		err = cmdParse(rest, stdin, stdout)
	case "publish":
		err = cmdPublish(ctx, rest, stdin, stderr)
	case "search":
		err = cmdSearch(ctx, rest, stdout, stderr)
	case "retention":
		err = cmdRetention(ctx, rest, stdout)
	case "verify":
		err = cmdVerify(ctx, rest, stdout)
	case "key":
		err = cmdKey(ctx, rest, stdout)
	case "verify-export":
		err = cmdVerifyExport(rest, stdout)
	case "token":
		err = cmdToken(ctx, rest, stdout)
	case "config":
		err = cmdConfig(rest, stdout)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, versionString())
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "connlog: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 2
		}
		fmt.Fprintf(stderr, "connlog %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func versionString() string {
	v := version
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		return fmt.Sprintf("connlog %s (%s)", v, info.GoVersion)
	}
	return "connlog " + v
}

// configFlag registers -config on fs, defaulting to $CONNLOG_CONFIG.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", os.Getenv("CONNLOG_CONFIG"), "configuration file (YAML)")
}
