// Package selfsigned makes and keeps a wildcard TLS certificate for a
// sandbox domain, signed by a local certificate authority, for
// `airlock serve --domain D --self-signed`.
package selfsigned

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Files are where Ensure keeps the authority and the server certificate.
type Files struct {
	CA   string // the authority's certificate: what clients trust
	Cert string // the server's certificate chain (leaf, then the CA)
	Key  string // the server's private key
}

// Lifetimes: the authority outlives many server certificates; the server
// certificate stays under the 398 days browsers accept.
const (
	caLifetime   = 10 * 365 * 24 * time.Hour
	leafLifetime = 397 * 24 * time.Hour
	// renewBefore renews a server certificate this long before it expires.
	renewBefore = 30 * 24 * time.Hour
)

// ErrBadDomain is returned for a domain a certificate cannot name.
var ErrBadDomain = errors.New("selfsigned: invalid domain")

// Ensure returns the certificate files for domain under dir, creating the
// authority once and the server certificate (for domain and *.domain)
// whenever it is missing, for another domain, or near its expiry.
func Ensure(dir, domain string, now time.Time) (Files, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if domain == "" || strings.ContainsAny(domain, ":/* ") {
		return Files{}, fmt.Errorf("%w: %q", ErrBadDomain, domain)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Files{}, err
	}
	f := Files{
		CA:   filepath.Join(dir, "ca.pem"),
		Cert: filepath.Join(dir, "server.pem"),
		Key:  filepath.Join(dir, "server-key.pem"),
	}
	caKeyFile := filepath.Join(dir, "ca-key.pem")
	ca, caKey, err := loadPair(f.CA, caKeyFile)
	if err != nil || now.After(ca.NotAfter.Add(-renewBefore)) {
		if ca, caKey, err = newCA(now); err != nil {
			return Files{}, err
		}
		if err := writePair(f.CA, caKeyFile, [][]byte{ca.Raw}, caKey); err != nil {
			return Files{}, err
		}
	}
	if leaf, _, err := loadPair(f.Cert, f.Key); err == nil && leafFits(leaf, ca, domain, now) {
		return f, nil
	}
	leaf, leafKey, err := newLeaf(ca, caKey, domain, now)
	if err != nil {
		return Files{}, err
	}
	return f, writePair(f.Cert, f.Key, [][]byte{leaf.Raw, ca.Raw}, leafKey)
}

func leafFits(leaf, ca *x509.Certificate, domain string, now time.Time) bool {
	return leaf.CheckSignatureFrom(ca) == nil &&
		slices.Equal(leaf.DNSNames, []string{domain, "*." + domain}) &&
		now.Before(leaf.NotAfter.Add(-renewBefore))
}

func newCA(now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Airlock local CA", Organization: []string{"Airlock"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func newLeaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey, domain string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "*." + domain},
		DNSNames:     []string{domain, "*." + domain},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(leafLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}

// loadPair reads a certificate and its ECDSA key.
func loadPair(certFile, keyFile string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, err
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, errors.New("selfsigned: key is not ECDSA")
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	return cert, key, err
}

// writePair writes the chain and key, each through a temporary file, so a
// crash never leaves half a certificate behind.
func writePair(certFile, keyFile string, chain [][]byte, key *ecdsa.PrivateKey) error {
	var certPEM []byte
	for _, der := range chain {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return writeFile(certFile, certPEM, 0o644)
}

func writeFile(name string, data []byte, mode os.FileMode) error {
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}
