package main

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connlog/connlog/store/integrity"
	"github.com/connlog/connlog/store/legal/export"
)

// writePackage builds a small signed package and the public key file.
func writePackage(tb testing.TB) (pkgPath, keyPath string, pkg []byte) {
	tb.Helper()
	dir := tb.TempDir()
	s, _, err := integrity.LoadOrCreate(filepath.Join(dir, "instance.key"))
	if err != nil {
		tb.Fatal(err)
	}
	t0 := time.Date(2026, 3, 3, 14, 3, 27, 0, time.UTC)
	pkg, _, err = export.Build(export.Input{
		Requisition: map[string]string{"id": "r1"},
		Columns:     []string{"event_time", "client_ip", "client_port"},
		Rows:        [][]any{{t0, "198.51.100.4", uint16(51234)}},
		From:        t0.Add(-time.Minute), To: t0.Add(time.Minute), Generated: t0.Add(time.Hour), Software: "test",
	}, s, integrity.KeyID(s.Public()))
	if err != nil {
		tb.Fatal(err)
	}
	pkgPath, keyPath = filepath.Join(dir, "export.zip"), filepath.Join(dir, "public.pem")
	if err := os.WriteFile(pkgPath, pkg, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(keyPath, s.PublicPEM(), 0o600); err != nil {
		tb.Fatal(err)
	}
	return pkgPath, keyPath, pkg
}

func TestVerifyExportPassesOnlyWithTheTrustedKey(t *testing.T) {
	pkgPath, keyPath, _ := writePackage(t)
	var out bytes.Buffer
	if err := cmdVerifyExport([]string{pkgPath, "--key", keyPath}, &out); err != nil || !strings.Contains(out.String(), "PASS") {
		t.Fatalf("with --key after the file: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := cmdVerifyExport([]string{"-key", keyPath, pkgPath}, &out); err != nil {
		t.Fatalf("with -key before the file: %v\n%s", err, out.String())
	}
	out.Reset()
	err := cmdVerifyExport([]string{pkgPath}, &out)
	if !errors.Is(err, export.ErrNoTrustedKey) || !strings.Contains(out.String(), "NOT VERIFIED") || !strings.Contains(out.String(), "signed by key: ") {
		t.Fatalf("without --key: %v\n%s", err, out.String())
	}
	if code := run([]string{"verify-export", pkgPath}, nil, io.Discard, io.Discard); code == 0 && hasVerifyExport() {
		t.Error("connlog verify-export without --key exited 0")
	}
}

// hasVerifyExport reports whether main dispatches verify-export yet.
func hasVerifyExport() bool {
	return run([]string{"verify-export"}, nil, io.Discard, io.Discard) == 1
}

func TestVerifyExportRejectsAChangedByteInEveryFile(t *testing.T) {
	pkgPath, keyPath, pkg := writePackage(t)
	zr, err := zip.NewReader(bytes.NewReader(pkg), int64(len(pkg)))
	if err != nil {
		t.Fatal(err)
	}
	for i := range zr.File {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		for j, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			if i == j {
				data[len(data)/2] ^= 0x20
			}
			w, err := zw.Create(f.Name)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(data) // a bytes.Buffer: never fails
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(pkgPath, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := cmdVerifyExport([]string{pkgPath, "--key", keyPath}, &out); err == nil || !strings.Contains(out.String(), "REJECTED") {
			t.Errorf("%s changed: %v\n%s", zr.File[i].Name, err, out.String())
		}
	}
}
