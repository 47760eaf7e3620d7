package loader

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

const bpffsMount = "/sys/fs/bpf"

// ensureBPFFS mounts bpffs on /sys/fs/bpf when a pin root below it is
// asked for and nothing is mounted there yet (minimal systems and fresh
// containers often lack it), as systemd and Cilium do.
func ensureBPFFS(pinRoot string) error {
	abs, err := filepath.Abs(pinRoot)
	if err != nil {
		return err
	}
	if abs != bpffsMount && !strings.HasPrefix(abs, bpffsMount+"/") {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(bpffsMount, &st); err != nil {
		return fmt.Errorf("%s: %w", bpffsMount, err)
	}
	if st.Type == unix.BPF_FS_MAGIC {
		return nil
	}
	// A bpffs mounted in a private mount namespace dies with it, and with
	// it every pin: refuse rather than lose the data path on exit.
	self, err1 := os.Readlink("/proc/self/ns/mnt")
	initNS, err2 := os.Readlink("/proc/1/ns/mnt")
	if err1 == nil && err2 == nil && self != initNS {
		return fmt.Errorf("no bpffs on %s in this mount namespace (under `ip netns exec`, which remounts /sys? use `nsenter --net=/run/netns/NAME` instead)", bpffsMount)
	}
	if err := unix.Mount("bpf", bpffsMount, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mounting bpffs on %s: %w", bpffsMount, err)
	}
	return nil
}
