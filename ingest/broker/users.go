package broker

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/connlog/connlog/ingest/kafkaclient"
	"github.com/connlog/connlog/store"
)

// The files of the data directory that hold the embedded broker's
// identities, in librdkafka's property format so that `kcat -F FILE` and
// any librdkafka-based shipper can use them as they are.
const (
	ShipperCredentialsFile  = "kafka-shipper.properties" //nolint:gosec // G101: a file name, not a credential
	ConsumerCredentialsFile = "kafka-connlog.properties" //nolint:gosec // G101: a file name, not a credential
)

// The embedded broker's user names.
const (
	brokerShipperUser  = "shipper"
	brokerConsumerUser = "connlog"
)

// newUsers returns both identities with fresh random passwords.
func newUsers() (Users, error) {
	var u Users
	for _, s := range []struct {
		to   *kafkaclient.SASL
		user string
	}{{&u.Shipper, brokerShipperUser}, {&u.Consumer, brokerConsumerUser}} {
		pw, err := newPassword()
		if err != nil {
			return Users{}, err
		}
		*s.to = kafkaclient.SASL{Mechanism: kafkaclient.MechanismSCRAMSHA512, Username: s.user, Password: pw}
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

func (u Users) validate() error {
	var errs []error
	for _, s := range []struct {
		name string
		id   kafkaclient.SASL
	}{{"shipper", u.Shipper}, {"consumer", u.Consumer}} {
		switch {
		case s.id.Username == "" || s.id.Password == "":
			errs = append(errs, fmt.Errorf("broker users: the %s identity needs a user name and a password", s.name))
		case s.id.Mechanism != "" && !strings.EqualFold(s.id.Mechanism, kafkaclient.MechanismSCRAMSHA512):
			errs = append(errs, fmt.Errorf("broker users: the %s identity uses %s; the embedded broker speaks %s", s.name, s.id.Mechanism, kafkaclient.MechanismSCRAMSHA512))
		}
	}
	if u.Shipper.Username != "" && u.Shipper.Username == u.Consumer.Username {
		errs = append(errs, errors.New("broker users: shipper and consumer must be different users"))
	}
	return errors.Join(errs...)
}

// LoadOrCreateUsers returns the embedded broker's identities kept in
// dir ([ShipperCredentialsFile], [ConsumerCredentialsFile]), creating them
// with random passwords, mode 0600, on first use; created lists the files
// it wrote. A credentials file that others than its owner may read or
// write is refused: the shipper password lets anyone forge log lines.
func LoadOrCreateUsers(dir string) (users Users, created []string, err error) {
	fresh, err := newUsers()
	if err != nil {
		return Users{}, nil, err
	}
	for _, f := range []struct {
		name    string
		to      *kafkaclient.SASL
		fresh   kafkaclient.SASL
		comment string
	}{
		{ShipperCredentialsFile, &users.Shipper, fresh.Shipper,
			"the shipper identity: it may only produce to connlog's topics.\n# kcat -F " + filepath.Join(dir, ShipperCredentialsFile) + " -P -b 127.0.0.1:9092 -t nginx"},
		{ConsumerCredentialsFile, &users.Consumer, fresh.Consumer,
			"connlog's own consumer identity: it may read the topics and use connlog's consumer group."},
	} {
		path := filepath.Join(dir, f.name)
		s, err := kafkaclient.ReadSASLFile(path)
		switch {
		case err == nil:
			*f.to = s
			continue
		case !errors.Is(err, os.ErrNotExist):
			return Users{}, created, err
		}
		if err := kafkaclient.WriteSASLFile(path, f.fresh, f.comment); err != nil {
			return Users{}, created, err
		}
		*f.to = f.fresh
		created = append(created, path)
	}
	if err := users.validate(); err != nil {
		return Users{}, created, err
	}
	return users, created, nil
}
