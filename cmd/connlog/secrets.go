package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// secretFiles names the files of the data directory that hold secrets, as
// filepath.Match patterns. A pattern without a slash is matched against the
// name of every file in the data directory and its subdirectories (except
// engineDir); a pattern with a slash is a path relative to the data
// directory. Whoever adds a secret file under the data directory adds it
// here if no pattern matches its name yet.
var secretFiles = []string{
	"*.key",              // instance.key: the Ed25519 key that signs manifests and requisition packages
	"*.token",            // admin.token: the bootstrap admin API token
	"*.secret",           // any other generated secret
	"*credentials*",      // e.g. the embedded broker's generated SASL credentials
	"*password*",         // e.g. the embedded engine's generated listener password
	"kafka-*.properties", // the embedded broker's SASL identities (shipper, connlog)
}

// engineDir is the embedded engine's own directory under the data
// directory: its files are the engine's, made with the engine's modes and
// protected by the data directory's 0700; walking it at every start would
// cost time proportional to the number of parts.
const engineDir = "clickhouse"

// checkSecrets refuses a data directory whose secrets other users could
// read or change: dataDir must be a directory owned by connlog's user with
// no permission for group or others (0700), and every secret file in it
// (secretFiles), and each of extra (e.g. a signing key kept elsewhere),
// must be a regular file owned by connlog's user with no permission for
// group or others (0600 or 0400). A missing data directory or extra file is
// not an error: it is created with those modes when needed. Every problem
// is reported at once, each with the command that fixes it.
func checkSecrets(dataDir string, extra ...string) error {
	uid := os.Geteuid()
	var errs []error
	fi, err := os.Stat(dataDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// nothing stored yet
	case err != nil:
		errs = append(errs, fmt.Errorf("data directory: %w", err))
	case !fi.IsDir():
		errs = append(errs, fmt.Errorf("data directory %s is not a directory", dataDir))
	default:
		errs = append(errs, checkOwnerMode(dataDir, fi, uid, 0o700))
		files, err := matchSecrets(dataDir)
		if err != nil {
			errs = append(errs, err)
		}
		extra = append(files, extra...)
	}
	seen := map[string]bool{}
	for _, f := range extra {
		if seen[filepath.Clean(f)] {
			continue
		}
		seen[filepath.Clean(f)] = true
		fi, err := os.Stat(f)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			errs = append(errs, fmt.Errorf("secret file: %w", err))
		case !fi.Mode().IsRegular():
			errs = append(errs, fmt.Errorf("secret file %s is not a regular file", f))
		default:
			errs = append(errs, checkOwnerMode(f, fi, uid, 0o600))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("secrets at rest are not protected, refusing to start:\n%w", err)
	}
	return nil
}

// checkOwnerMode reports a file or directory that connlog's user does not
// own, or that grants anything to group or others; want is the mode to
// suggest.
func checkOwnerMode(path string, fi fs.FileInfo, uid int, want fs.FileMode) error {
	var errs []error
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != uid {
		errs = append(errs, fmt.Errorf("%s is owned by uid %d, not by connlog's uid %d: another user could replace it (chown %d %s)", path, st.Uid, uid, uid, path))
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		errs = append(errs, fmt.Errorf("%s has mode %04o: group or others may read or change it (chmod %04o %s)", path, perm, want, path))
	}
	return errors.Join(errs...)
}

// matchSecrets returns the files under dataDir that secretFiles names.
func matchSecrets(dataDir string) ([]string, error) {
	var out []string
	var errs []error
	for _, p := range secretFiles {
		if strings.Contains(p, "/") {
			m, err := filepath.Glob(filepath.Join(dataDir, filepath.FromSlash(p)))
			if err != nil {
				errs = append(errs, fmt.Errorf("secret pattern %q: %w", p, err))
			}
			out = append(out, m...)
		}
	}
	err := filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		if d.IsDir() {
			if path != dataDir && d.Name() == engineDir && filepath.Dir(path) == filepath.Clean(dataDir) {
				return filepath.SkipDir
			}
			return nil
		}
		for _, p := range secretFiles {
			if ok, _ := filepath.Match(p, d.Name()); ok && !strings.Contains(p, "/") {
				out = append(out, path)
				break
			}
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// prepareDataDir checks the secrets in the data directory, and the signing
// key wherever it is kept. With the embedded engine, whose files live
// there, it first creates the directory (0700) if it does not exist. serve
// and every command that opens the data directory run it first.
func prepareDataDir(cfg *Config) error {
	if cfg.ClickHouse.Embedded() {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
	}
	return checkSecrets(cfg.DataDir, instanceKeyPath(cfg))
}
