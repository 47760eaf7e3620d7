// Package pki makes and checks the certificates of an xwan mesh.
//
// Every mesh has one CA (ECDSA P-256, self-signed) and every site one
// certificate signed by it. Tunnel peers authenticate each other with these
// certificates and nothing else, so the only question a gateway asks of a
// peer's certificate is "which site of my mesh is this?".
//
// Naming convention: a site certificate carries the site name twice, as its
// subject CommonName and as the single DNS SAN "<site>.xwan.internal"
// (".internal" is reserved by ICANN for private use, so the name can never
// collide with a public one). Both must agree; the SAN makes the certificate
// usable with ordinary hostname checks, e.g. `openssl s_client
// -verify_hostname <site>.xwan.internal`. Site names are 1..63 characters of
// [a-z0-9-], not starting or ending with '-': a valid DNS label.
//
// Files: a CA directory holds ca.pem and ca-key.pem; a site's files are
// <site>.pem and <site>-key.pem. Keys are PKCS#8 PEM, mode 0600. Nothing is
// ever overwritten: re-issuing a certificate means removing the old files
// first, on purpose.
package pki

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
	"time"
)

// DNSSuffix follows the site name in a site certificate's DNS SAN.
const DNSSuffix = ".xwan.internal"

// Validity periods. The CA outlives every certificate it signs; sites renew
// by re-issuing. Certificates start an hour in the past so that gateways
// whose clocks disagree a little still accept each other.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	SiteValidity = 2 * 365 * 24 * time.Hour
	clockSkew    = time.Hour
)

const caCommonName = "xwan mesh CA"

// ValidateSiteName reports whether name can name a site: 1..63 characters
// of [a-z0-9-], not starting or ending with '-'.
func ValidateSiteName(name string) error {
	if len(name) == 0 || len(name) > 63 {
		return fmt.Errorf("site name %q: must be 1 to 63 characters", name)
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("site name %q: only a-z, 0-9 and '-' are allowed", name)
		}
	}
	if name[0] == '-' || name[len(name)-1] == '-' {
		return fmt.Errorf("site name %q: must not start or end with '-'", name)
	}
	return nil
}

// SiteDNSName is the DNS SAN of site's certificate.
func SiteDNSName(site string) string { return site + DNSSuffix }

// CAFiles returns the paths of the CA certificate and key in dir.
func CAFiles(dir string) (certFile, keyFile string) {
	return filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
}

// SiteFiles returns the paths of site's certificate and key in dir.
func SiteFiles(dir, site string) (certFile, keyFile string) {
	return filepath.Join(dir, site+".pem"), filepath.Join(dir, site+"-key.pem")
}

// InitCA creates a new mesh CA in dir (created if missing). It refuses to
// touch a directory that already holds a CA certificate or key.
func InitCA(dir string) error {
	certFile, keyFile := CAFiles(dir)
	for _, f := range []string{certFile, keyFile} {
		if _, err := os.Lstat(f); err == nil {
			return fmt.Errorf("init CA: %s: %w", f, os.ErrExist)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("init CA: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return fmt.Errorf("init CA: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: caCommonName},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // sites only: no intermediate CAs
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("init CA: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("init CA: %w", err)
	}
	return writePair(certFile, keyFile, der, key)
}

// IssueSite signs a new certificate for site with the CA in caDir and
// writes it to outDir (created if missing). It refuses to overwrite an
// existing certificate or key for that site.
func IssueSite(caDir, site, outDir string) error {
	if err := ValidateSiteName(site); err != nil {
		return fmt.Errorf("issue site: %w", err)
	}
	certFile, keyFile := SiteFiles(outDir, site)
	for _, f := range []string{certFile, keyFile} {
		if _, err := os.Lstat(f); err == nil {
			return fmt.Errorf("issue site %s: %s: %w", site, f, os.ErrExist)
		}
	}
	caCert, caKey, err := loadCA(caDir)
	if err != nil {
		return fmt.Errorf("issue site %s: %w", site, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("issue site %s: %w", site, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return fmt.Errorf("issue site %s: %w", site, err)
	}
	now := time.Now()
	notAfter := now.Add(SiteValidity)
	if notAfter.After(caCert.NotAfter) {
		notAfter = caCert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: site},
		DNSNames:     []string{SiteDNSName(site)},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		// Either end of a tunnel may be the DTLS client or server.
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("issue site %s: %w", site, err)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("issue site %s: %w", site, err)
	}
	return writePair(certFile, keyFile, der, key)
}

// LoadCAPool reads the mesh CA certificate into a pool holding only it.
func LoadCAPool(certFile string) (*x509.CertPool, error) {
	cert, err := readCert(certFile)
	if err != nil {
		return nil, err
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("%s: not a CA certificate", certFile)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool, nil
}

// LoadSiteKeyPair reads a site certificate and its key. The result's Leaf
// is set, and SiteOf(Leaf) names the site.
func LoadSiteKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	if _, err := SiteOf(pair.Leaf); err != nil {
		return tls.Certificate{}, fmt.Errorf("%s: %w", certFile, err)
	}
	return pair, nil
}

// SiteOf returns the site a certificate names, or an error wrapping
// ErrNotSiteCertificate if it does not follow the site naming convention.
// It does not check who signed the certificate: see VerifySite.
func SiteOf(cert *x509.Certificate) (string, error) {
	site, err := siteOf(cert)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNotSiteCertificate, err)
	}
	return site, nil
}

func siteOf(cert *x509.Certificate) (string, error) {
	site := cert.Subject.CommonName
	if cert.IsCA {
		return "", fmt.Errorf("%q is a CA certificate", site)
	}
	if err := ValidateSiteName(site); err != nil {
		return "", err
	}
	if len(cert.DNSNames) != 1 || cert.DNSNames[0] != SiteDNSName(site) {
		return "", fmt.Errorf("CommonName %q but DNS names %q, want [%s]", site, cert.DNSNames, SiteDNSName(site))
	}
	return site, nil
}

func randomSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
}

// writePair writes a certificate and its key, both created exclusively; if
// the second write fails the first file is removed again.
func writePair(certFile, keyFile string, der []byte, key *ecdsa.PrivateKey) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeNew(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	if err := writeNew(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		_ = os.Remove(keyFile)
		return err
	}
	return nil
}

func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		_ = os.Remove(path)
		return err
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return err
	}
	return nil
}

func readCert(certFile string) (*x509.Certificate, error) {
	data, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no PEM certificate", certFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certFile, err)
	}
	return cert, nil
}

func loadCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certFile, keyFile := CAFiles(dir)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("load CA: %w", err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || !pair.Leaf.IsCA {
		return nil, nil, errors.New("load CA: " + certFile + " is not an ECDSA CA certificate")
	}
	return pair.Leaf, key, nil
}
