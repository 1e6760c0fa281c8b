package selfsigned

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"testing"
	"time"
)

func verify(t *testing.T, f Files, host string, at time.Time) error {
	t.Helper()
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("CA file holds no certificate")
	}
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	_, err = leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: pool, CurrentTime: at})
	return err
}

func TestEnsureMakesAWildcardCertificateTheCAVerifies(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	f, err := Ensure(dir, "Sandbox.Example.", now)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"sandbox.example", "8000-abc.sandbox.example"} {
		if err := verify(t, f, host, now); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
	for _, host := range []string{"a.b.sandbox.example", "other.example"} {
		if err := verify(t, f, host, now); err == nil {
			t.Errorf("%s verified, want a name mismatch", host)
		}
	}
	if st, err := os.Stat(f.Key); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key mode: %v %v", st.Mode(), err)
	}
}

func TestEnsureKeepsTheCAAndRenewsTheLeafWhenNeeded(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	f, err := Ensure(dir, "a.test", now)
	if err != nil {
		t.Fatal(err)
	}
	ca1, _ := os.ReadFile(f.CA)
	leaf1, _ := os.ReadFile(f.Cert)

	// Same domain: nothing changes, so a trusted CA stays trusted.
	if _, err := Ensure(dir, "a.test", now); err != nil {
		t.Fatal(err)
	}
	if leaf, _ := os.ReadFile(f.Cert); string(leaf) != string(leaf1) {
		t.Error("leaf re-made for the same domain")
	}
	// Another domain: a new leaf from the same CA.
	if _, err := Ensure(dir, "b.test", now); err != nil {
		t.Fatal(err)
	}
	if ca, _ := os.ReadFile(f.CA); string(ca) != string(ca1) {
		t.Error("CA re-made for a new domain")
	}
	if err := verify(t, f, "1-x.b.test", now); err != nil {
		t.Error(err)
	}
	// Near expiry: renewed, and valid at that later time.
	later := now.Add(leafLifetime - renewBefore/2)
	if _, err := Ensure(dir, "b.test", later); err != nil {
		t.Fatal(err)
	}
	if err := verify(t, f, "1-x.b.test", later.Add(renewBefore)); err != nil {
		t.Errorf("renewed leaf: %v", err)
	}
}

func TestEnsureRejectsBadDomains(t *testing.T) {
	for _, d := range []string{"", "*.x.test", "x.test:3000", "a b"} {
		if _, err := Ensure(t.TempDir(), d, time.Now()); !errors.Is(err, ErrBadDomain) {
			t.Errorf("%q: %v, want ErrBadDomain", d, err)
		}
	}
}
