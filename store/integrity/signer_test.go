package integrity

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestKeyIsCreatedOnceAndReused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "instance.key")
	s1, created, err := LoadOrCreate(path)
	if err != nil || !created {
		t.Fatalf("first LoadOrCreate: created=%v err=%v", created, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
	s2, created, err := LoadOrCreate(path)
	if err != nil || created {
		t.Fatalf("second LoadOrCreate: created=%v err=%v", created, err)
	}
	if !s1.Public().Equal(s2.Public()) {
		t.Fatal("reloaded key differs")
	}
	msg := []byte("manifest")
	sig := s2.Sign(msg)
	pub, err := ParsePublicPEM(s1.PublicPEM())
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(pub, msg, sig); err != nil {
		t.Fatal(err)
	}
	msg[0] ^= 1
	if err := Verify(pub, msg, sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("altered message verified: %v", err)
	}
	if len(KeyID(pub)) != 16 {
		t.Fatal("key id length")
	}
}

func TestCorruptKeyFileIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "instance.key")
	os.WriteFile(path, []byte("garbage"), 0o600)
	if _, _, err := LoadOrCreate(path); err == nil {
		t.Fatal("corrupt key accepted")
	}
}
