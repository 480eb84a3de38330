package ingest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connlog/connlog/ingest/kafkaclient"
	"github.com/connlog/connlog/store"
	"github.com/twmb/franz-go/pkg/kfake"
)

// testPKI is a CA, a broker certificate for "broker.test" and 127.0.0.1,
// and a client certificate, all made for the test, as PEM files.
type testPKI struct {
	ca, clientCert, clientKey, serverKey, otherCA, notPEM string
	server                                                tls.Certificate
	pool                                                  *x509.CertPool
}

func newTestPKI(t testing.TB, dir string) testPKI {
	t.Helper()
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	serial := int64(1)
	sign := func(tmpl *x509.Certificate, parent *x509.Certificate, pub *ecdsa.PublicKey, priv *ecdsa.PrivateKey) (*x509.Certificate, []byte) {
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c, der
	}
	marshal := func(k *ecdsa.PrivateKey) []byte {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	caTmpl := func(cn string) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: cn}, IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	}
	var p testPKI
	caKey := key()
	ca, caDER := sign(caTmpl("connlog test CA"), nil, &caKey.PublicKey, caKey)
	p.ca = write("ca.pem", "CERTIFICATE", caDER)
	p.pool = x509.NewCertPool()
	p.pool.AddCert(ca)
	otherKey := key()
	_, otherDER := sign(caTmpl("another CA"), nil, &otherKey.PublicKey, otherKey)
	p.otherCA = write("other-ca.pem", "CERTIFICATE", otherDER)

	srvKey := key()
	_, srvDER := sign(&x509.Certificate{Subject: pkix.Name{CommonName: "broker.test"}, DNSNames: []string{"broker.test"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca, &srvKey.PublicKey, caKey)
	p.server = tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
	p.serverKey = write("server-key.pem", "EC PRIVATE KEY", marshal(srvKey))

	cliKey := key()
	_, cliDER := sign(&x509.Certificate{Subject: pkix.Name{CommonName: "connlog"}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, ca, &cliKey.PublicKey, caKey)
	p.clientCert = write("client.pem", "CERTIFICATE", cliDER)
	p.clientKey = write("client-key.pem", "EC PRIVATE KEY", marshal(cliKey))

	p.notPEM = filepath.Join(dir, "not.pem")
	if err := os.WriteFile(p.notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestKafkaClientSASLOverTLS runs connlog's producer (Publish) and consumer
// (the Pipeline: consumer group and readers) against kfake with TLS that
// requires a client certificate and SASL, for each mechanism; then checks
// that a wrong CA, a wrong server name, a missing client certificate, a
// wrong password and a broker offering only TLS 1.1 are refused.
func TestKafkaClientSASLOverTLS(t *testing.T) {
	pki := newTestPKI(t, t.TempDir())
	serverTLS := func(maxVersion uint16) *tls.Config {
		return &tls.Config{Certificates: []tls.Certificate{pki.server}, ClientAuth: tls.RequireAndVerifyClientCert,
			ClientCAs: pki.pool, MinVersion: tls.VersionTLS10, MaxVersion: maxVersion}
	}
	users := map[string]kafkaclient.SASL{}
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.TLS(serverTLS(tls.VersionTLS13)), kfake.EnableSASL()}
	for _, m := range []string{kafkaclient.MechanismPlain, kafkaclient.MechanismSCRAMSHA256, kafkaclient.MechanismSCRAMSHA512} {
		pw, err := testPassword()
		if err != nil {
			t.Fatal(err)
		}
		users[m] = kafkaclient.SASL{Mechanism: m, Username: "u-" + m, Password: pw}
		opts = append(opts, kfake.User(m, "u-"+m, string(pw)), kfake.SeedTopics(1, "t-"+m))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	good := kafkaclient.TLS{Enabled: true, CAFile: pki.ca, CertFile: pki.clientCert, KeyFile: pki.clientKey, ServerName: "broker.test"}

	for m, id := range users {
		t.Run(m, func(t *testing.T) {
			topic := "t-" + m
			lines := genCombined(200)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			n, err := kafkaclient.Publish(ctx, kafkaclient.PublishConfig{Brokers: brokers, Topic: topic, SASL: id, TLS: good}, stringsReader(lines))
			if err != nil || n != len(lines) {
				t.Fatalf("Publish over TLS with %s = %d, %v", m, n, err)
			}
			cfg := testConfig(brokers, topic)
			cfg.SASL, cfg.TLS = id, good
			sink := newTestSink()
			p, err := New(cfg, sink, nil, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			stop := runPipeline(t, p)
			sink.waitFor(t, "every line consumed over TLS", func() bool { return sink.stored() == len(lines) })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
		})
	}

	id := users[kafkaclient.MechanismSCRAMSHA512]
	wrongPassword := id
	wrongPassword.Password += "x"
	noClientCert := good
	noClientCert.CertFile, noClientCert.KeyFile = "", ""
	otherCA := good
	otherCA.CAFile = pki.otherCA
	wrongName := good
	wrongName.ServerName = "elsewhere.test"
	dial := func(addr string, id kafkaclient.SASL, tc kafkaclient.TLS) error {
		d, err := kafkaclient.NewDialer(id, tc)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		defer conn.Close()
		_, err = conn.ReadPartitions("t-" + kafkaclient.MechanismSCRAMSHA512)
		return err
	}
	if err := dial(brokers[0], id, good); err != nil {
		t.Fatalf("the good settings: %v", err)
	}
	for name, tc := range map[string]struct {
		id  kafkaclient.SASL
		tls kafkaclient.TLS
	}{
		"wrong password": {wrongPassword, good}, "no client certificate": {id, noClientCert},
		"another CA": {id, otherCA}, "wrong server name": {id, wrongName}, "no TLS": {id, kafkaclient.TLS{}},
	} {
		if err := dial(brokers[0], tc.id, tc.tls); err == nil {
			t.Errorf("%s: connected", name)
		}
	}

	old, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(serverTLS(tls.VersionTLS11)), kfake.EnableSASL(),
		kfake.User(kafkaclient.MechanismSCRAMSHA512, id.Username, string(id.Password)), kfake.SeedTopics(1, "t-"+kafkaclient.MechanismSCRAMSHA512))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(old.Close)
	if err := dial(old.ListenAddrs()[0], id, good); err == nil {
		t.Error("connected to a broker offering TLS 1.1 at most: the minimum is TLS 1.2")
	}
}

func stringsReader(lines []string) *strings.Reader {
	return strings.NewReader(strings.Join(lines, "\n") + "\n")
}

// testPassword is a random password, as the broker's own identities get.
func testPassword() (store.Secret, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return store.Secret(base64.RawURLEncoding.EncodeToString(b)), nil
}
