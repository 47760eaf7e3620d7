package loader

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/xwan-dev/xwan/userspace/testenv"
)

// testPinRoot returns a fresh pin root under bpffs for one test, removed
// (with everything pinned in it) when the test ends.
func testPinRoot(t testing.TB) string {
	t.Helper()
	testenv.RequireRoot(t)
	if err := ensureBPFFS("/sys/fs/bpf"); err != nil {
		testenv.Unavailable(t, "bpffs: %v", err)
	}
	root := filepath.Join("/sys/fs/bpf", testenv.UniqueName("xwan-test-"))
	t.Cleanup(func() {
		_ = Cleanup(root)
		_ = os.RemoveAll(root)
	})
	return root
}

// openTest opens a data path on its own pin root.
func openTest(t testing.TB) *Datapath {
	t.Helper()
	d, err := Open(Options{PinRoot: testPinRoot(t), FlowTableSize: 65536})
	if err != nil {
		testenv.Unavailable(t, "loading the LAN program: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}
