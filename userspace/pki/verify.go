package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
)

// Why a peer's certificate was refused. VerifySite and PeerSite return an
// *AuthError wrapping exactly one of these, so callers can tell the cases
// apart with errors.Is and tell an authentication failure from any other
// error with errors.As.
var (
	ErrNoCertificate      = errors.New("peer presented no certificate")
	ErrUnknownCA          = errors.New("certificate not issued by this mesh's CA")
	ErrCertificateInvalid = errors.New("certificate invalid") // malformed, expired, not yet valid, wrong usage
	ErrNotSiteCertificate = errors.New("not a site certificate")
	ErrWrongSite          = errors.New("certificate is for another site")
)

// AuthError is a refused peer certificate: Err is one of the Err* values of
// this package, Detail says what exactly was wrong.
type AuthError struct {
	Err    error
	Detail string
}

func (e *AuthError) Error() string { return e.Err.Error() + ": " + e.Detail }
func (e *AuthError) Unwrap() error { return e.Err }

// PeerSite verifies a peer's certificate chain (leaf first, as sent in a
// (D)TLS Certificate message) against the mesh CA and returns the site it
// names.
func PeerSite(rawCerts [][]byte, roots *x509.CertPool) (string, error) {
	if len(rawCerts) == 0 {
		return "", &AuthError{ErrNoCertificate, "empty certificate chain"}
	}
	certs := make([]*x509.Certificate, len(rawCerts))
	for i, raw := range rawCerts {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return "", &AuthError{ErrCertificateInvalid, err.Error()}
		}
		certs[i] = c
	}
	leaf := certs[0]
	intermediates := x509.NewCertPool()
	for _, c := range certs[1:] {
		intermediates.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		// A site certificate carries both; accepting either lets the
		// check be the same in the DTLS client and server.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	})
	var unknown x509.UnknownAuthorityError
	switch {
	case errors.As(err, &unknown):
		return "", &AuthError{ErrUnknownCA, fmt.Sprintf("%q issued by %q", leaf.Subject.CommonName, leaf.Issuer.CommonName)}
	case err != nil:
		return "", &AuthError{ErrCertificateInvalid, err.Error()}
	}
	site, err := siteOf(leaf)
	if err != nil {
		return "", &AuthError{ErrNotSiteCertificate, err.Error()}
	}
	return site, nil
}

// VerifySite is PeerSite that also requires the certificate to name
// expectedSite.
func VerifySite(rawCerts [][]byte, roots *x509.CertPool, expectedSite string) error {
	site, err := PeerSite(rawCerts, roots)
	if err != nil {
		return err
	}
	if site != expectedSite {
		return &AuthError{ErrWrongSite, fmt.Sprintf("presented %q, expected %q", site, expectedSite)}
	}
	return nil
}
