package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/connlog/connlog/api"
	"github.com/connlog/connlog/ingest/broker"
	"github.com/connlog/connlog/ingest/kafkaclient"
	"github.com/connlog/connlog/ingest/logline"
	"github.com/connlog/connlog/store"
)

func cmdParse(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("parse", flag.ContinueOnError)
	path := configFlag(fs)
	format := fs.String("format", "", "log format: "+strings.Join(logline.Formats(), ", ")+" (default: auto-detect)")
	logFormat := fs.String("log-format", "", "an nginx log_format string (nginx.conf syntax); overrides -format")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// Parse exactly as serve would: the configuration's trusted proxies,
	// redacted parameters and operation rules apply.
	pcfg := logline.DefaultConfig()
	if *path != "" {
		cfg, err := loadConfig(*path, os.Environ())
		if err != nil {
			return err
		}
		pcfg = cfg.Kafka.Parse
	}
	p, err := logline.New(pcfg.WithFormat(*format, *logFormat))
	if err != nil {
		return err
	}
	return logline.ParseStream(stdin, stdout, p)
}

func cmdPublish(ctx context.Context, args []string, stdin io.Reader, stderr io.Writer) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	brokers := fs.String("brokers", broker.DefaultAddr, "Kafka brokers, comma-separated")
	topic := fs.String("topic", "nginx", "topic")
	dataDir := fs.String("data-dir", envOr("CONNLOG_DATA_DIR", defaultConfig().DataDir), "connlog's data directory: without other credentials, the embedded broker's shipper identity is read from "+broker.ShipperCredentialsFile+" there, if it exists")
	credentials := fs.String("credentials", "", "a file of SASL credentials in librdkafka's format (sasl.mechanisms, sasl.username, sasl.password), mode 0600")
	mechanism := fs.String("sasl-mechanism", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	username := fs.String("sasl-username", "", "SASL user name")
	passwordFile := fs.String("sasl-password-file", "", "file holding the SASL password (not on the command line, where ps shows it)")
	var tls kafkaclient.TLS
	fs.BoolVar(&tls.Enabled, "tls", false, "connect with TLS (1.2 or later)")
	fs.StringVar(&tls.CAFile, "tls-ca-file", "", "PEM file of the CAs that sign the brokers' certificates (default: the system's)")
	fs.StringVar(&tls.CertFile, "tls-cert-file", "", "PEM client certificate")
	fs.StringVar(&tls.KeyFile, "tls-key-file", "", "PEM key of -tls-cert-file")
	fs.StringVar(&tls.ServerName, "tls-server-name", "", "name the brokers' certificates must be valid for (default: the broker's host)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := kafkaclient.PublishConfig{Brokers: strings.Split(*brokers, ","), Topic: *topic, TLS: tls}
	switch {
	case *mechanism != "" || *username != "" || *passwordFile != "":
		cfg.SASL = kafkaclient.SASL{Mechanism: *mechanism, Username: *username}
		if *passwordFile != "" {
			raw, err := os.ReadFile(*passwordFile)
			if err != nil {
				return fmt.Errorf("sasl password: %w", err)
			}
			cfg.SASL.Password = store.Secret(strings.TrimSpace(string(raw)))
		}
	case *credentials != "":
		s, err := kafkaclient.ReadSASLFile(*credentials)
		if err != nil {
			return err
		}
		cfg.SASL = s
	default:
		// The embedded broker's shipper identity, so that the walk-through
		// needs no credential on the command line.
		s, err := kafkaclient.ReadSASLFile(filepath.Join(*dataDir, broker.ShipperCredentialsFile))
		switch {
		case err == nil:
			cfg.SASL = s
		case !errors.Is(err, os.ErrNotExist):
			return err
		}
	}
	if err := errors.Join(cfg.SASL.Validate(), tls.Validate()); err != nil {
		return err
	}
	n, err := kafkaclient.Publish(ctx, cfg, stdin)
	fmt.Fprintf(stderr, "published %d lines to %s on %s\n", n, *topic, *brokers)
	return err
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func cmdToken(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return fmt.Errorf("usage: connlog token create -name NAME -role ROLE [-sites a,b]")
	}
	fs := flag.NewFlagSet("token create", flag.ContinueOnError)
	path := configFlag(fs)
	name := fs.String("name", "", "the person this token belongs to")
	role := fs.String("role", "", "analyst, officer, stats, auditor or admin")
	sites := fs.String("sites", "", "limit the token to these sites (comma-separated)")
	purpose := purposeFlag(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	r := opRequest{Command: opTokenCreate, Purpose: *purpose, Name: *name, Role: *role}
	if *sites != "" {
		r.Sites = strings.Split(*sites, ",")
	}
	return runOperator(ctx, *path, r, stdout)
}

// runTokenCreate makes the token r describes and prints it with its
// api.tokens entry. Nothing is stored: the configuration lists the hash.
func runTokenCreate(r *opRequest, stdout io.Writer) error {
	t, err := r.token()
	if err != nil {
		return err
	}
	tok, sum, err := api.NewToken()
	if err != nil {
		return err
	}
	t.SHA256 = sum
	fmt.Fprintf(stdout, "token (give it to %s; it is not stored anywhere and cannot be shown again):\n\n    %s\n\n", t.Name, tok)
	fmt.Fprintf(stdout, "add to the api.tokens list of the configuration:\n\n    - {name: %q, role: %q, sha256: %q", t.Name, t.Role, t.SHA256)
	if len(t.Sites) > 0 {
		fmt.Fprintf(stdout, ", sites: [%s]", strings.Join(t.Sites, ", "))
	}
	fmt.Fprintln(stdout, "}")
	return nil
}

func cmdConfig(args []string, stdout io.Writer) error {
	if len(args) == 1 && args[0] == "reference" { //nolint:gosec // G602: a false positive, len(args) is checked first
		writeReference(stdout)
		return nil
	}
	if len(args) == 0 || args[0] != "check" {
		return fmt.Errorf("usage: connlog config check [-config FILE] | connlog config reference")
	}
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	path := configFlag(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(*path, os.Environ())
	if err != nil {
		return fmt.Errorf("configuration is not valid:\n%w", err)
	}
	fmt.Fprintln(stdout, "configuration OK")
	if len(cfg.deprecated) > 0 {
		fmt.Fprintln(stdout, "\ndeprecated keys, still read; rename or remove them (old → new):")
		for _, d := range cfg.deprecated {
			fmt.Fprintf(stdout, "  %s → %s\n", d.old, d.new)
		}
	}
	return nil
}
