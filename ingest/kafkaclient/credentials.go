package kafkaclient

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/connlog/connlog/store"
)

// ReadSASLFile reads a SASL identity from a file in librdkafka's property
// format ("key=value" lines, "#" comments): sasl.mechanisms (or
// sasl.mechanism), sasl.username and sasl.password; other keys are
// ignored. It refuses a file that others than its owner may read or write.
func ReadSASLFile(path string) (SASL, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return SASL{}, fmt.Errorf("kafka credentials: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return SASL{}, fmt.Errorf("kafka credentials: %s has mode %04o: it holds a password, allow only its owner (chmod 600)", path, fi.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return SASL{}, fmt.Errorf("kafka credentials: %w", err)
	}
	var s SASL
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "sasl.mechanisms", "sasl.mechanism":
			s.Mechanism = strings.TrimSpace(v)
		case "sasl.username":
			s.Username = strings.TrimSpace(v)
		case "sasl.password":
			s.Password = store.Secret(strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		return SASL{}, fmt.Errorf("kafka credentials %s: %w", path, err)
	}
	if s.Mechanism == "" || s.Username == "" || s.Password == "" {
		return SASL{}, fmt.Errorf("kafka credentials %s: sasl.mechanisms, sasl.username and sasl.password are required", path)
	}
	return s, nil
}

// WriteSASLFile creates path (it must not exist) with mode 0600.
func WriteSASLFile(path string, s SASL, comment string) error {
	body := fmt.Sprintf("# connlog embedded Kafka broker: %s\n# Keep this file private (mode 0600): the password is the credential.\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanisms=%s\nsasl.username=%s\nsasl.password=%s\n",
		comment, s.Mechanism, s.Username, string(s.Password))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("save kafka credentials: %w", err)
	}
	if _, err := f.WriteString(body); err != nil {
		_ = f.Close() // the first error is the one returned
		return fmt.Errorf("save kafka credentials: %w", err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close() // the first error is the one returned
		return fmt.Errorf("save kafka credentials: %w", err)
	}
	return f.Close()
}
