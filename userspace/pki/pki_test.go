package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xwan-dev/xwan/userspace/testenv"
)

func TestValidateSiteName(t *testing.T) {
	for _, name := range []string{"a", "site-1", "0", strings.Repeat("x", 63)} {
		if err := ValidateSiteName(name); err != nil {
			t.Errorf("ValidateSiteName(%q) = %v, want nil", name, err)
		}
	}
	for _, name := range []string{"", strings.Repeat("x", 64), "Site", "a.b", "a_b", "-a", "a-", "a b", "é"} {
		if err := ValidateSiteName(name); err == nil {
			t.Errorf("ValidateSiteName(%q) = nil, want an error", name)
		}
	}
}

// newCA makes a CA in a fresh directory and returns the directory.
func newCA(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	if err := InitCA(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestInitCA(t *testing.T) {
	dir := newCA(t)
	certFile, keyFile := CAFiles(dir)
	cert, err := readCert(certFile)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid || cert.MaxPathLen != 0 || !cert.MaxPathLenZero {
		t.Errorf("CA constraints: IsCA=%v MaxPathLen=%d MaxPathLenZero=%v", cert.IsCA, cert.MaxPathLen, cert.MaxPathLenZero)
	}
	if cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA key usage %v lacks CertSign", cert.KeyUsage)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("CA key is %T, want ECDSA P-256", cert.PublicKey)
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		t.Errorf("CA is not self-signed: %v", err)
	}
	if life := cert.NotAfter.Sub(time.Now()); life < CAValidity-time.Hour || life > CAValidity {
		t.Errorf("CA valid for another %v, want about %v", life, CAValidity)
	}
	if !cert.NotBefore.Before(time.Now().Add(-30 * time.Minute)) {
		t.Errorf("CA NotBefore %v leaves no room for clock skew", cert.NotBefore)
	}
	st, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("CA key mode %v, want 0600", st.Mode().Perm())
	}
	if _, _, err := loadCA(dir); err != nil {
		t.Errorf("loadCA: %v", err)
	}
}

func TestInitCARefusesToOverwrite(t *testing.T) {
	dir := newCA(t)
	certFile, keyFile := CAFiles(dir)
	before, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := InitCA(dir); !errors.Is(err, os.ErrExist) {
		t.Errorf("second InitCA = %v, want os.ErrExist", err)
	}
	after, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("second InitCA changed the CA key")
	}

	// Half a CA (only the key left) is refused too.
	if err := os.Remove(certFile); err != nil {
		t.Fatal(err)
	}
	if err := InitCA(dir); !errors.Is(err, os.ErrExist) {
		t.Errorf("InitCA over a lone key = %v, want os.ErrExist", err)
	}
}

func TestIssueSite(t *testing.T) {
	caDir := newCA(t)
	out := filepath.Join(t.TempDir(), "sites")
	if err := IssueSite(caDir, "paris-1", out); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := SiteFiles(out, "paris-1")
	pair, err := LoadSiteKeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	leaf := pair.Leaf
	if leaf.Subject.CommonName != "paris-1" {
		t.Errorf("CommonName %q", leaf.Subject.CommonName)
	}
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "paris-1.xwan.internal" {
		t.Errorf("DNS SANs %q, want [paris-1.xwan.internal]", leaf.DNSNames)
	}
	if site, err := SiteOf(leaf); site != "paris-1" || err != nil {
		t.Errorf("SiteOf = %q, %v", site, err)
	}
	pool, err := LoadCAPool(filepath.Join(caDir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("verify for usage %v: %v", usage, err)
		}
	}
	if _, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || leaf.IsCA {
		t.Errorf("site key %T, IsCA=%v", leaf.PublicKey, leaf.IsCA)
	}
	if life := leaf.NotAfter.Sub(time.Now()); life < SiteValidity-time.Hour || life > SiteValidity {
		t.Errorf("site certificate valid for another %v, want about %v", life, SiteValidity)
	}
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("site key: %v, %v", st, err)
	}

	if err := IssueSite(caDir, "paris-1", out); !errors.Is(err, os.ErrExist) {
		t.Errorf("issuing paris-1 again = %v, want os.ErrExist", err)
	}
	if err := IssueSite(caDir, "Paris", out); err == nil {
		t.Error("IssueSite accepted an invalid site name")
	}
	if err := IssueSite(t.TempDir(), "lyon", out); err == nil {
		t.Error("IssueSite without a CA succeeded")
	}
	if _, err := os.Stat(filepath.Join(out, "lyon-key.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed IssueSite left a key behind: %v", err)
	}
}

func TestLoaders(t *testing.T) {
	caDir := newCA(t)
	out := t.TempDir()
	for _, s := range []string{"a", "b"} {
		if err := IssueSite(caDir, s, out); err != nil {
			t.Fatal(err)
		}
	}
	aCert, _ := SiteFiles(out, "a")
	_, bKey := SiteFiles(out, "b")
	if _, err := LoadSiteKeyPair(aCert, bKey); err == nil {
		t.Error("LoadSiteKeyPair accepted site a's certificate with site b's key")
	}
	if _, err := LoadCAPool(aCert); err == nil {
		t.Error("LoadCAPool accepted a site certificate as the CA")
	}
	caCert, caKey := CAFiles(caDir)
	if _, err := LoadSiteKeyPair(caCert, caKey); !errors.Is(err, ErrNotSiteCertificate) {
		t.Errorf("LoadSiteKeyPair(CA) = %v, want ErrNotSiteCertificate", err)
	}
}

// mesh is a CA and the raw certificates of some of its sites.
type mesh struct {
	dir  string
	pool *x509.CertPool
}

func newMesh(t *testing.T) mesh {
	t.Helper()
	dir := newCA(t)
	pool, err := LoadCAPool(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return mesh{dir, pool}
}

func (m mesh) site(t *testing.T, name string) [][]byte {
	t.Helper()
	out := t.TempDir()
	if err := IssueSite(m.dir, name, out); err != nil {
		t.Fatal(err)
	}
	pair, err := LoadSiteKeyPair(SiteFiles(out, name))
	if err != nil {
		t.Fatal(err)
	}
	return pair.Certificate
}

// signed returns a certificate made from tmpl and signed by m's CA.
func (m mesh) signed(t *testing.T, tmpl *x509.Certificate) [][]byte {
	t.Helper()
	caCert, caKey, err := loadCA(m.dir)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := randomSerial()
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{der}
}

func TestVerifySite(t *testing.T) {
	m := newMesh(t)
	other := newMesh(t)
	caCert, err := readCert(filepath.Join(m.dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	siteTmpl := func(cn string, dns ...string) *x509.Certificate {
		return &x509.Certificate{
			Subject: pkix.Name{CommonName: cn}, DNSNames: dns,
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}
	}
	expired := siteTmpl("b", "b.xwan.internal")
	expired.NotBefore, expired.NotAfter = now.Add(-48*time.Hour), now.Add(-24*time.Hour)
	codeSigning := siteTmpl("b", "b.xwan.internal")
	codeSigning.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}

	tests := []struct {
		name  string
		chain [][]byte
		want  error // nil: accepted
	}{
		{"right site", m.site(t, "b"), nil},
		{"another site", m.site(t, "c"), ErrWrongSite},
		{"another CA, same site name", other.site(t, "b"), ErrUnknownCA},
		{"no certificate", nil, ErrNoCertificate},
		{"garbage", [][]byte{[]byte("not DER")}, ErrCertificateInvalid},
		{"expired", m.signed(t, expired), ErrCertificateInvalid},
		{"wrong key usage", m.signed(t, codeSigning), ErrCertificateInvalid},
		{"SAN disagrees with CN", m.signed(t, siteTmpl("b", "c.xwan.internal")), ErrNotSiteCertificate},
		{"no SAN", m.signed(t, siteTmpl("b")), ErrNotSiteCertificate},
		{"invalid site name", m.signed(t, siteTmpl("B", "B.xwan.internal")), ErrNotSiteCertificate},
		{"the CA itself", [][]byte{caCert.Raw}, ErrNotSiteCertificate},
	}
	sentinels := []error{ErrNoCertificate, ErrUnknownCA, ErrCertificateInvalid, ErrNotSiteCertificate, ErrWrongSite}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifySite(tt.chain, m.pool, "b")
			if tt.want == nil {
				if err != nil {
					t.Fatalf("VerifySite = %v, want nil", err)
				}
				return
			}
			var ae *AuthError
			if !errors.As(err, &ae) {
				t.Fatalf("VerifySite = %v (%T), want an *AuthError", err, err)
			}
			for _, s := range sentinels {
				if errors.Is(err, s) != (s == tt.want) {
					t.Errorf("VerifySite = %q: errors.Is(%q) = %v", err, s, !(s == tt.want))
				}
			}
		})
	}
}

func TestPeerSite(t *testing.T) {
	m := newMesh(t)
	site, err := PeerSite(m.site(t, "berlin"), m.pool)
	if err != nil || site != "berlin" {
		t.Errorf("PeerSite = %q, %v; want berlin", site, err)
	}
}

// TestOpenSSLAcceptsCertificates checks the files with OpenSSL's own
// verifier, including the SAN convention as a hostname.
func TestOpenSSLAcceptsCertificates(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		testenv.Unavailable(t, "openssl not installed")
	}
	caDir := newCA(t)
	out := t.TempDir()
	if err := IssueSite(caDir, "oslo", out); err != nil {
		t.Fatal(err)
	}
	caCert, _ := CAFiles(caDir)
	cert, _ := SiteFiles(out, "oslo")
	for _, args := range [][]string{
		{"-purpose", "sslclient"},
		{"-purpose", "sslserver", "-verify_hostname", "oslo.xwan.internal"},
	} {
		argv := append([]string{"verify", "-CAfile", caCert}, args...)
		argv = append(argv, cert)
		if out, err := exec.Command(openssl, argv...).CombinedOutput(); err != nil || !strings.Contains(string(out), ": OK") {
			t.Errorf("openssl %v: %v: %s", argv, err, out)
		}
	}
	argv := []string{"verify", "-CAfile", caCert, "-verify_hostname", "bergen.xwan.internal", cert}
	if out, err := exec.Command(openssl, argv...).CombinedOutput(); err == nil {
		t.Errorf("openssl %v accepted another site's name: %s", argv, out)
	}
}
