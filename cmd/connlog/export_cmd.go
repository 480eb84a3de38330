package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/connlog/connlog/store/integrity"
	"github.com/connlog/connlog/store/legal/export"
)

const verifyExportUsage = "usage: connlog verify-export FILE.zip --key PUBLIC.pem"

// cmdVerifyExport checks a requisition export package offline and prints
// what it checked. It succeeds only for an intact package signed by the key
// given with --key: the key embedded in the package proves nothing about
// who made it, so without --key the result is at best "consistent, origin
// unknown", which is a failure.
func cmdVerifyExport(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("verify-export", flag.ContinueOnError)
	keyPath := fs.String("key", "", "the instance's public key (PEM), obtained from its operator apart from the package")
	// Accept the file before or after the flags.
	var files []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(files) != 1 {
		return errors.New(verifyExportUsage)
	}
	pkg, err := os.ReadFile(files[0])
	if err != nil {
		return fmt.Errorf("read package: %w", err)
	}
	var trusted []byte
	if *keyPath != "" {
		raw, err := os.ReadFile(*keyPath)
		if err != nil {
			return fmt.Errorf("read public key: %w", err)
		}
		pub, err := integrity.ParsePublicPEM(raw)
		if err != nil {
			return fmt.Errorf("public key %s: %w", *keyPath, err)
		}
		trusted = pub
		fmt.Fprintf(stdout, "trusted key: %s (%s)\n", integrity.KeyID(pub), *keyPath)
	}
	r, verr := export.Verify(pkg, trusted)
	if r.KeyID != "" {
		fmt.Fprintf(stdout, "signed by key: %s\n", r.KeyID)
	}
	if m := r.Manifest; m != nil {
		fmt.Fprintf(stdout, "records: %d, selected from %s to %s, generated %s by %s\n",
			m.Records, m.TimeRange.From.Format("2006-01-02T15:04:05Z07:00"), m.TimeRange.To.Format("2006-01-02T15:04:05Z07:00"),
			m.GeneratedAt.Format("2006-01-02T15:04:05Z07:00"), m.Software)
	}
	for _, c := range r.Checks {
		fmt.Fprintf(stdout, "ok    %s\n", c)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(stdout, "FAIL  %s\n", p)
	}
	switch {
	case errors.Is(verr, export.ErrNoTrustedKey):
		fmt.Fprintf(stdout, "NOT VERIFIED: the package is self-consistent, but without --key anyone could have made it.\n"+
			"Obtain the instance's public key from its operator, check that its ID is %s, and run again with --key.\n", r.KeyID)
		return verr
	case verr != nil:
		fmt.Fprintln(stdout, "REJECTED: the package has been altered or is not a connlog export.")
		return verr
	}
	fmt.Fprintf(stdout, "PASS: intact and signed by the trusted key %s\n", r.TrustedKeyID)
	return nil
}
