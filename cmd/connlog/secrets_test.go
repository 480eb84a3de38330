package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// privateDir is a fresh directory of mode 0700, as connlog wants its data
// directory (t.TempDir's are 0755 under a 0700 parent).
func privateDir(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	return dir
}

func writeFile(tb testing.TB, path string, mode os.FileMode) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("secret\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		tb.Fatal(err)
	}
}

func TestCheckSecretsRefusesWhatOthersCanReach(t *testing.T) {
	cases := []struct {
		name    string
		dirMode os.FileMode
		file    string // relative to the data directory; "" for none
		mode    os.FileMode
		want    string // "" for accepted
	}{
		{name: "private directory and key", dirMode: 0o700, file: "instance.key", mode: 0o600},
		{name: "read-only key", dirMode: 0o700, file: "instance.key", mode: 0o400},
		{name: "files that are not secrets may be readable", dirMode: 0o700, file: "audit-journal/000001.jsonl", mode: 0o644},
		{name: "the engine's own files are its business", dirMode: 0o700, file: "clickhouse/preprocessed.key", mode: 0o644},
		{name: "directory readable by others", dirMode: 0o755, want: "has mode 0755"},
		{name: "directory open to the group", dirMode: 0o750, want: "has mode 0750"},
		{name: "signing key readable by others", dirMode: 0o700, file: "instance.key", mode: 0o644, want: "instance.key has mode 0644"},
		{name: "admin token readable by the group", dirMode: 0o700, file: "admin.token", mode: 0o640, want: "admin.token has mode 0640"},
		{name: "admin token writable by others", dirMode: 0o700, file: "admin.token", mode: 0o602, want: "admin.token has mode 0602"},
		{name: "credentials in a subdirectory", dirMode: 0o700, file: "kafka/sasl-credentials.json", mode: 0o644, want: "sasl-credentials.json has mode 0644"},
		{name: "an engine password", dirMode: 0o700, file: "engine-password", mode: 0o604, want: "engine-password has mode 0604"},
		{name: "any generated secret", dirMode: 0o700, file: "x.secret", mode: 0o660, want: "x.secret has mode 0660"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := privateDir(t)
			if c.file != "" {
				writeFile(t, filepath.Join(dir, c.file), c.mode)
			}
			if err := os.Chmod(dir, c.dirMode); err != nil {
				t.Fatal(err)
			}
			err := checkSecrets(dir)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			case c.want != "" && !strings.Contains(err.Error(), "chmod "):
				t.Errorf("the error does not say how to fix it: %v", err)
			}
		})
	}
}

func TestCheckSecretsReportsEveryProblemAndTheKeyOutside(t *testing.T) {
	dir := privateDir(t)
	writeFile(t, filepath.Join(dir, "admin.token"), 0o644)
	outside := filepath.Join(t.TempDir(), "keys", "instance.key")
	writeFile(t, outside, 0o640)
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	err := checkSecrets(dir, outside)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"has mode 0711", "admin.token has mode 0644", outside + " has mode 0640"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	// Missing files are created later with the right modes: not an error.
	if err := checkSecrets(filepath.Join(dir, "none"), filepath.Join(dir, "none.key")); err != nil {
		t.Errorf("missing data directory: %v", err)
	}
}

func TestServeAndOperatorCommandsRefuseAnOpenDataDirectory(t *testing.T) {
	dir := privateDir(t)
	writeFile(t, filepath.Join(dir, "instance.key"), 0o644)
	cfgPath := filepath.Join(dir, "connlog.yaml")
	if err := os.WriteFile(cfgPath, []byte("data_dir: "+dir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Every command that opens the data directory refuses before it loads
	// the engine or reads the key.
	for _, args := range [][]string{{"serve"}, {"migrate"}, {"retention"}, {"verify"}, {"key"}} {
		var out bytes.Buffer
		code := run(append(args, "-config", cfgPath), nil, &out, &out)
		if code != 1 || !strings.Contains(out.String(), "secrets at rest are not protected") || !strings.Contains(out.String(), "instance.key has mode 0644") {
			t.Errorf("connlog %s: exit %d\n%s", args[0], code, out.String())
		}
	}
}
