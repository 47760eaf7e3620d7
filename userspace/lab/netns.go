package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// sh runs a command with a bound and returns its combined output.
func sh(argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// nsCommand returns a command running in a namespace's network only (not
// `ip netns exec`, which remounts /sys and hides the host's bpffs).
func nsCommand(ctx context.Context, ns string, argv ...string) *exec.Cmd {
	args := append([]string{"--net=/run/netns/" + ns, "--"}, argv...)
	return exec.CommandContext(ctx, "nsenter", args...)
}

// in runs a command inside a namespace.
func in(ns string, argv ...string) (string, error) {
	return sh(append([]string{"nsenter", "--net=/run/netns/" + ns, "--"}, argv...)...)
}

func randomName(prefix string) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// veth joins ifA in namespace a and ifB in namespace b, with addresses.
func veth(a, ifA, addrA, b, ifB, addrB string) error {
	ta, tb := randomName("xl"), randomName("xl")
	if _, err := sh("ip", "link", "add", ta, "type", "veth", "peer", "name", tb); err != nil {
		return err
	}
	for _, c := range [][]string{
		{"ip", "link", "set", ta, "netns", a, "name", ifA},
		{"ip", "link", "set", tb, "netns", b, "name", ifB},
	} {
		if _, err := sh(c...); err != nil {
			_, _ = sh("ip", "link", "del", ta)
			return err
		}
	}
	for _, s := range [][3]string{{a, ifA, addrA}, {b, ifB, addrB}} {
		if s[2] != "" {
			if _, err := in(s[0], "ip", "addr", "add", s[2], "dev", s[1]); err != nil {
				return err
			}
		}
		if _, err := in(s[0], "ip", "link", "set", s[1], "up"); err != nil {
			return err
		}
	}
	return nil
}

// namespaces lists the namespaces whose name starts with prefix.
func namespaces(prefix string) []string {
	out, err := sh("ip", "netns", "list")
	if err != nil {
		return nil
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			names = append(names, f[0])
		}
	}
	return names
}

// deleteNamespace kills what runs inside and deletes it.
func deleteNamespace(ns string) {
	if pids, err := sh("ip", "netns", "pids", ns); err == nil {
		for _, p := range strings.Fields(pids) {
			_, _ = sh("kill", "-9", p)
		}
	}
	_, _ = sh("ip", "netns", "del", ns)
}

// WaitListening waits until something listens on a TCP port in a
// namespace (iperf3 servers, for instance, say nothing when ready).
func WaitListening(ns string, port int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		out, _ := in(ns, "ss", "-Hltn", fmt.Sprintf("sport = :%d", port))
		if strings.TrimSpace(out) != "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on port %d in %s after %s", port, ns, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
