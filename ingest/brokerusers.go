package ingest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/connlog/connlog/store"
)

// The files of the data directory that hold the embedded broker's
// identities, in librdkafka's property format so that `kcat -F FILE` and
// any librdkafka-based shipper can use them as they are.
const (
	ShipperCredentialsFile  = "kafka-shipper.properties"
	ConsumerCredentialsFile = "kafka-connlog.properties"
)

// The embedded broker's user names.
const (
	brokerShipperUser  = "shipper"
	brokerConsumerUser = "connlog"
)

// newBrokerUsers returns both identities with fresh random passwords.
func newBrokerUsers() (BrokerUsers, error) {
	var u BrokerUsers
	for _, s := range []struct {
		to   *SASL
		user string
	}{{&u.Shipper, brokerShipperUser}, {&u.Consumer, brokerConsumerUser}} {
		pw, err := newPassword()
		if err != nil {
			return BrokerUsers{}, err
		}
		*s.to = SASL{Mechanism: MechanismSCRAMSHA512, Username: s.user, Password: pw}
	}
	return u, nil
}

// newPassword returns 256 random bits, base64url: no character a config
// file, a shell or sed would treat specially.
func newPassword() (store.Secret, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate password: %w", err)
	}
	return store.Secret(base64.RawURLEncoding.EncodeToString(b)), nil
}

func (u BrokerUsers) validate() error {
	var errs []error
	for _, s := range []struct {
		name string
		id   SASL
	}{{"shipper", u.Shipper}, {"consumer", u.Consumer}} {
		switch {
		case s.id.Username == "" || s.id.Password == "":
			errs = append(errs, fmt.Errorf("broker users: the %s identity needs a user name and a password", s.name))
		case s.id.Mechanism != "" && !strings.EqualFold(s.id.Mechanism, MechanismSCRAMSHA512):
			errs = append(errs, fmt.Errorf("broker users: the %s identity uses %s; the embedded broker speaks %s", s.name, s.id.Mechanism, MechanismSCRAMSHA512))
		}
	}
	if u.Shipper.Username != "" && u.Shipper.Username == u.Consumer.Username {
		errs = append(errs, errors.New("broker users: shipper and consumer must be different users"))
	}
	return errors.Join(errs...)
}

// LoadOrCreateBrokerUsers returns the embedded broker's identities kept in
// dir ([ShipperCredentialsFile], [ConsumerCredentialsFile]), creating them
// with random passwords, mode 0600, on first use; created lists the files
// it wrote. A credentials file that others than its owner may read or
// write is refused: the shipper password lets anyone forge log lines.
func LoadOrCreateBrokerUsers(dir string) (users BrokerUsers, created []string, err error) {
	fresh, err := newBrokerUsers()
	if err != nil {
		return BrokerUsers{}, nil, err
	}
	for _, f := range []struct {
		name    string
		to      *SASL
		fresh   SASL
		comment string
	}{
		{ShipperCredentialsFile, &users.Shipper, fresh.Shipper,
			"the shipper identity: it may only produce to connlog's topics.\n# kcat -F " + filepath.Join(dir, ShipperCredentialsFile) + " -P -b 127.0.0.1:9092 -t nginx"},
		{ConsumerCredentialsFile, &users.Consumer, fresh.Consumer,
			"connlog's own consumer identity: it may read the topics and use connlog's consumer group."},
	} {
		path := filepath.Join(dir, f.name)
		s, err := ReadSASLFile(path)
		switch {
		case err == nil:
			*f.to = s
			continue
		case !errors.Is(err, os.ErrNotExist):
			return BrokerUsers{}, created, err
		}
		if err := writeSASLFile(path, f.fresh, f.comment); err != nil {
			return BrokerUsers{}, created, err
		}
		*f.to = f.fresh
		created = append(created, path)
	}
	if err := users.validate(); err != nil {
		return BrokerUsers{}, created, err
	}
	return users, created, nil
}

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

// writeSASLFile creates path (it must not exist) with mode 0600.
func writeSASLFile(path string, s SASL, comment string) error {
	body := fmt.Sprintf("# connlog embedded Kafka broker: %s\n# Keep this file private (mode 0600): the password is the credential.\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanisms=%s\nsasl.username=%s\nsasl.password=%s\n",
		comment, s.Mechanism, s.Username, string(s.Password))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("save kafka credentials: %w", err)
	}
	if _, err := f.WriteString(body); err != nil {
		f.Close()
		return fmt.Errorf("save kafka credentials: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save kafka credentials: %w", err)
	}
	return f.Close()
}
