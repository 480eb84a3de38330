package kafkaclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/connlog/connlog/store"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// The SASL mechanisms connlog speaks, as Kafka spells them.
const (
	MechanismPlain       = "PLAIN"
	MechanismSCRAMSHA256 = "SCRAM-SHA-256"
	MechanismSCRAMSHA512 = "SCRAM-SHA-512"
)

// kafkaDialTimeout bounds connecting (TCP, TLS and SASL) to one broker; it
// is kafka-go's default.
const kafkaDialTimeout = 10 * time.Second

// SASL is a Kafka client's SASL identity. The zero value means no SASL.
type SASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (any case); empty:
	// no SASL. PLAIN sends the password itself: use it only over TLS.
	// Default: empty.
	Mechanism string `yaml:"mechanism"`
	// Username is the SASL user name.
	Username string `yaml:"username"`
	// Password is Username's password (better set by
	// CONNLOG_KAFKA_SASL_PASSWORD than in the file).
	Password store.Secret `yaml:"password"`
}

// TLS configures TLS (version 1.2 or later) to the Kafka brokers.
type TLS struct {
	// Enabled turns TLS on. Default: false.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM file of the certificate authorities that sign the
	// brokers' certificates. Default: the system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile is a PEM client certificate (chain), for brokers that
	// authenticate clients by certificate; set CertFile and KeyFile both or
	// neither. Default: none.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of CertFile. Default: none.
	KeyFile string `yaml:"key_file"`
	// ServerName is the name the brokers' certificates must be valid for.
	// Default: the host of each broker address.
	ServerName string `yaml:"server_name"`
}

// Enabled reports whether s asks for SASL at all.
func (s SASL) Enabled() bool { return s.Mechanism != "" }

// Validate reports every problem in s at once. The zero SASL is valid.
func (s SASL) Validate() error {
	if !s.Enabled() {
		if s.Username != "" || s.Password != "" {
			return errors.New("sasl: username or password set without sasl.mechanism")
		}
		return nil
	}
	var errs []error
	if _, err := s.mechanism(); err != nil {
		errs = append(errs, err)
	}
	if s.Username == "" {
		errs = append(errs, errors.New("sasl.username: required with a mechanism"))
	}
	if s.Password == "" {
		errs = append(errs, errors.New("sasl.password: required with a mechanism"))
	}
	return errors.Join(errs...)
}

// mechanism returns kafka-go's implementation of s, nil when s is the zero
// SASL.
func (s SASL) mechanism() (sasl.Mechanism, error) {
	switch strings.ToUpper(s.Mechanism) {
	case "":
		return nil, nil
	case MechanismPlain:
		return plain.Mechanism{Username: s.Username, Password: string(s.Password)}, nil
	case MechanismSCRAMSHA256:
		return scram.Mechanism(scram.SHA256, s.Username, string(s.Password))
	case MechanismSCRAMSHA512:
		return scram.Mechanism(scram.SHA512, s.Username, string(s.Password))
	}
	return nil, fmt.Errorf("sasl.mechanism: %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.Mechanism)
}

// Validate reports every problem in t at once: each file set must be
// readable and hold what it should, and a client certificate comes with
// its key. The zero TLS is valid.
func (t TLS) Validate() error {
	if !t.Enabled {
		if t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" {
			return errors.New("tls: ca_file, cert_file, key_file or server_name set but tls.enabled is false")
		}
		return nil
	}
	_, err := t.config()
	return err
}

// config builds the client TLS configuration, nil when TLS is off.
func (t TLS) config() (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	var errs []error
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("tls.ca_file: %w", err))
		} else {
			c.RootCAs = x509.NewCertPool()
			if !c.RootCAs.AppendCertsFromPEM(pem) {
				errs = append(errs, fmt.Errorf("tls.ca_file: %s holds no PEM certificate", t.CAFile))
			}
		}
	}
	switch {
	case t.CertFile != "" && t.KeyFile != "":
		pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("tls.cert_file, tls.key_file: %w", err))
		} else {
			c.Certificates = []tls.Certificate{pair}
		}
	case t.CertFile != "":
		errs = append(errs, errors.New("tls.key_file: required with tls.cert_file"))
	case t.KeyFile != "":
		errs = append(errs, errors.New("tls.cert_file: required with tls.key_file"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// NewDialer returns the dialer of connlog's consumer connections: TCP, then
// TLS and SASL as configured. kafka-go fills in the TLS server name from
// each broker's address when t.ServerName is empty.
func NewDialer(s SASL, t TLS) (*kafka.Dialer, error) {
	m, tc, err := security(s, t)
	if err != nil {
		return nil, err
	}
	return &kafka.Dialer{Timeout: kafkaDialTimeout, DualStack: true, SASLMechanism: m, TLS: tc}, nil
}

// NewTransport is NewDialer for a kafka.Writer, which dials through a
// Transport instead.
func NewTransport(s SASL, t TLS) (*kafka.Transport, error) {
	d, err := NewDialer(s, t)
	if err != nil {
		return nil, err
	}
	return TransportOf(d), nil
}

// TransportOf returns a new kafka.Transport (a connection pool of its own)
// that connects as d does: the same TLS, SASL, timeout and client ID.
func TransportOf(d *kafka.Dialer) *kafka.Transport {
	return &kafka.Transport{DialTimeout: d.Timeout, SASL: d.SASLMechanism, TLS: d.TLS, ClientID: d.ClientID}
}

// security is the SASL mechanism and TLS configuration both kinds of
// connection use.
func security(s SASL, t TLS) (sasl.Mechanism, *tls.Config, error) {
	m, err := s.mechanism()
	if err != nil {
		return nil, nil, err
	}
	tc, err := t.config()
	if err != nil {
		return nil, nil, err
	}
	return m, tc, nil
}
