package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/integrity"
	"github.com/connlog/connlog/store/retention"
)

// instanceKeyPath is where the instance's signing key lives:
// signing_key_file, by default <data_dir>/instance.key.
func instanceKeyPath(cfg *Config) string {
	if cfg.SigningKeyFile != "" {
		return cfg.SigningKeyFile
	}
	return filepath.Join(cfg.DataDir, "instance.key")
}

// cmdRetention prints the retention report: per class, table and site, the
// lifetime, oldest and newest records, rows, bytes, the last enforcement
// pass, and OVERDUE where something outlived its lifetime. -enforce runs an
// enforcement pass first. It fails when anything is overdue.
func cmdRetention(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("retention", flag.ContinueOnError)
	path := configFlag(fs)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	enforce := fs.Bool("enforce", false, "run an enforcement pass (remove what expired) before reporting")
	purpose := purposeFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	return runOperator(ctx, *path, opRequest{Command: opRetention, Purpose: *purpose, JSON: *asJSON, Enforce: *enforce}, stdout)
}

// runRetention is cmdRetention once the store is at hand.
func runRetention(ctx context.Context, st *store.Store, asJSON, enforce bool, stdout io.Writer) error {
	if enforce {
		res, err := st.Enforce(ctx)
		if err != nil {
			return err
		}
		if !asJSON {
			fmt.Fprintf(stdout, "enforcement pass %s: %d rows removed, %d partitions dropped, %d holds released\n\n",
				res.RunID, res.Removed(), res.PartitionsDropped, len(res.HoldsReleased))
		}
	}
	rep, err := st.RetentionReport(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printReport(stdout, rep)
	}
	if rep.Overdue {
		return errors.New("records are stored past their lifetime (OVERDUE above)")
	}
	return nil
}

func printReport(w io.Writer, rep retention.Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CLASS\tTABLE\tSITE\tPOLICY\tOLDEST\tNEWEST\tROWS\tBYTES\tLAST PASS\tREMOVED\tSTATUS")
	day := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02")
	}
	for _, e := range rep.Entries {
		status := "ok"
		if e.Overdue {
			status = "OVERDUE"
		}
		if e.Detail != "" {
			status += " " + e.Detail
		}
		site := e.Site
		if site == "" {
			site = "*"
		}
		bytes := fmt.Sprint(e.Bytes)
		if e.BytesEstimated {
			bytes = "~" + bytes
		}
		last := "-"
		if !e.LastRun.IsZero() {
			last = e.LastRun.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s\n", e.Class, e.Table, site, e.Policy,
			day(e.Oldest), day(e.Newest), e.Rows, bytes, last, e.LastRemoved, status)
	}
	_ = tw.Flush() // to the terminal, like the Fprintf calls around it
	fmt.Fprintf(w, "\ngenerated %s, grace %s: ", rep.Generated.Format(time.RFC3339), rep.Grace)
	if rep.Overdue {
		fmt.Fprintln(w, "SOME RECORDS ARE OVERDUE")
	} else {
		fmt.Fprintln(w, "nothing is stored past its lifetime")
	}
	if len(rep.Integrity) > 0 {
		fmt.Fprintln(w, "\nintegrity chain heads (connlog verify proves later that this state was neither changed nor cut):")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TABLE\tTOPIC\tPARTITION\tMANIFESTS\tHEAD SHA-256\tKEY\tSIGNED")
		for _, h := range rep.Integrity {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\n", h.Table, h.Topic, h.Partition, h.Manifests, h.Hash, h.KeyID, h.Created.Format(time.RFC3339))
		}
		_ = tw.Flush()
	}
}

// keyFiles collects repeated -key flags.
type keyFiles []string

func (k *keyFiles) String() string     { return strings.Join(*k, ",") }
func (k *keyFiles) Set(v string) error { *k = append(*k, v); return nil }

// cmdVerify checks the tamper evidence of the stores: every manifest chain,
// signature and batch hash, and the writer links that name chains deleted
// whole. It fails, naming each batch or chain, on any gap, alteration or
// deletion outside the lifetimes. Trusted keys: the -key PEM
// files; without any, the keys the instances registered in the store
// (compare the printed ids with `connlog key` on each instance).
func cmdVerify(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	path := configFlag(fs)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	var keys keyFiles
	fs.Var(&keys, "key", "trusted public key (PEM) file; repeatable")
	purpose := purposeFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	r := opRequest{Command: opVerify, Purpose: *purpose, JSON: *asJSON}
	for _, k := range keys {
		raw, err := os.ReadFile(k)
		if err != nil {
			return fmt.Errorf("read trusted key: %w", err)
		}
		if _, err := integrity.ParsePublicPEM(raw); err != nil {
			return fmt.Errorf("trusted key %s: %w", k, err)
		}
		r.Keys = append(r.Keys, string(raw))
	}
	return runOperator(ctx, *path, r, stdout)
}

// runVerify is cmdVerify once the store is at hand.
func runVerify(ctx context.Context, st *store.Store, trusted []ed25519.PublicKey, asJSON bool, stdout io.Writer) error {
	rep, err := st.Verify(ctx, trusted...)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "%d chains, %d manifests, %d groups rehashed (%d rows), %d groups past their lifetime, keys %s\n",
			rep.Chains, rep.Manifests, rep.Groups, rep.Rows, rep.Expired, strings.Join(rep.KeyIDs, ", "))
		if rep.Versions[1] > 0 {
			fmt.Fprintf(stdout, "%d manifests of hash version 1 (written before every column was covered: the access log's operation, opt_out, shipper_host and log_file are not under them)\n", rep.Versions[1])
		}
		for _, w := range rep.Writers {
			// Kept from one run to the next, this shows what verify cannot:
			// the newest batches of every chain deleted at once.
			fmt.Fprintf(stdout, "key %s: latest insert %d, manifests %s\n", w.KeyID, w.Seq, strings.Join(w.Latest, " "))
		}
		if rep.PreManifestRows > 0 {
			fmt.Fprintf(stdout, "%d rows were stored before tamper evidence existed and cannot be checked\n", rep.PreManifestRows)
		}
		for _, p := range rep.Problems {
			fmt.Fprintln(stdout, "PROBLEM", p.String())
		}
		if rep.OK() {
			fmt.Fprintln(stdout, "OK: no gap, alteration or deletion outside the lifetimes")
		}
	}
	if !rep.OK() {
		return fmt.Errorf("%d integrity problems", len(rep.Problems))
	}
	return nil
}

// cmdKey prints the instance's public key (PEM) and key id, creating the key
// if there is none yet.
func cmdKey(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("key", flag.ContinueOnError)
	path := configFlag(fs)
	purpose := purposeFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	return runOperator(ctx, *path, opRequest{Command: opKey, Purpose: *purpose}, stdout)
}
