// Package testenv holds the rules every xwan test follows when it needs
// privileges or kernel features: under CI=true a missing capability fails the
// test instead of skipping it, so CI can never go green by skipping.
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the test runs under CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable stops the test because something it needs is missing: it fails
// under CI and skips elsewhere.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true and this test cannot run: "+format, args...)
	}
	t.Skipf("skipped (not in CI): "+format, args...)
}

// RequireRoot stops the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "needs root")
	}
}

// UniqueName returns prefix plus a short random suffix, so that parallel
// tests and leftovers from earlier runs never share a namespace, interface or
// pin path. Linux interface names are at most 15 bytes: keep prefix short.
func UniqueName(prefix string) string {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return prefix + hex.EncodeToString(b[:])
}

// MainWithDaemon is a TestMain for packages whose tests run the real
// xwand and xwanctl: as root it builds them into a temporary directory,
// stores its path in *dir, runs the tests and removes it; it returns the
// exit code.
func MainWithDaemon(m *testing.M, dir *string) int {
	if os.Geteuid() == 0 {
		d, err := BuildCommands("github.com/xwan-dev/xwan/cmd/xwand", "github.com/xwan-dev/xwan/cmd/xwanctl")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		*dir = d
		defer os.RemoveAll(d)
	}
	return m.Run()
}

// BuildCommands builds main packages (import paths) into a new temporary
// directory and returns it, for tests that run the real binaries; the
// caller removes it.
func BuildCommands(pkgs ...string) (string, error) {
	dir, err := os.MkdirTemp("", "xwan-bin-")
	if err != nil {
		return "", err
	}
	args := append([]string{"build", "-o", dir + "/"}, pkgs...)
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("go build %v: %v: %s", pkgs, err, out)
	}
	return dir, nil
}
