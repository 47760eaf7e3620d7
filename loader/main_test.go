package loader

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"testing"

	"github.com/xwan-dev/xwan/userspace/policy"
)

// Some tests need a loader in another process (to stop it without
// detaching) and inside a namespace: they re-run this test binary with
// XWAN_LOADER_CHILD set, and the child does one step and exits.
func TestMain(m *testing.M) {
	if step := os.Getenv("XWAN_LOADER_CHILD"); step != "" {
		if err := childStep(step, os.Getenv("XWAN_PIN_ROOT"), os.Getenv("XWAN_IFNAME")); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// childReport is what a child step prints as JSON on stdout.
type childReport struct {
	ProgID  uint32
	Adopted bool
	Mode    AttachMode
	Dest    *policy.Dest
}

var childPrefix = netip.MustParsePrefix("198.18.77.0/24")

func childStep(step, root, ifname string) error {
	d, err := Open(Options{PinRoot: root, FlowTableSize: 4096})
	if err != nil {
		return err
	}
	defer d.Close() // closes our handles only: pins stay
	mode, err := d.Attach(ifname)
	if err != nil {
		return err
	}
	if step == "first" {
		if err := d.SetDest(childPrefix, policy.Dest{Site: 7, Kind: policy.DestMesh}); err != nil {
			return err
		}
	}
	info, err := d.Program().Info()
	if err != nil {
		return err
	}
	id, _ := info.ID()
	rep := childReport{ProgID: uint32(id), Adopted: d.Adopted, Mode: mode}
	dests, err := d.Dests()
	if err != nil {
		return err
	}
	if v, ok := dests[childPrefix]; ok {
		rep.Dest = &v
	}
	return json.NewEncoder(os.Stdout).Encode(rep)
}
