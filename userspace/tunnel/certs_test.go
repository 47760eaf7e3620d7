package tunnel

import (
	"path/filepath"
	"testing"

	"github.com/xwan-dev/xwan/userspace/pki"
)

// testCA is a mesh CA made with userspace/pki in a test's temporary
// directory.
type testCA struct {
	dir string
	t   testing.TB
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	if err := pki.InitCA(dir); err != nil {
		t.Fatal(err)
	}
	return &testCA{dir: dir, t: t}
}

func (ca *testCA) caFile() string {
	f, _ := pki.CAFiles(ca.dir)
	return f
}

// siteFiles issues a certificate for site and returns its files.
func (ca *testCA) siteFiles(site string) (certFile, keyFile string) {
	ca.t.Helper()
	out := ca.t.TempDir()
	if err := pki.IssueSite(ca.dir, site, out); err != nil {
		ca.t.Fatal(err)
	}
	return pki.SiteFiles(out, site)
}

// identity issues a certificate for site and returns it with trust in
// trusted's CA (usually ca itself).
func (ca *testCA) identity(site string, trusted *testCA) Identity {
	ca.t.Helper()
	pair, err := pki.LoadSiteKeyPair(ca.siteFiles(site))
	if err != nil {
		ca.t.Fatal(err)
	}
	pool, err := pki.LoadCAPool(trusted.caFile())
	if err != nil {
		ca.t.Fatal(err)
	}
	return Identity{Certificate: pair, Roots: pool}
}
