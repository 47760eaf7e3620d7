package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// Netns is a network namespace made by one test and deleted when it ends.
type Netns struct {
	Name string
}

// NewNetns creates a namespace named prefix+random suffix, brings its
// loopback up and deletes it (with every process still in it) at cleanup.
func NewNetns(t testing.TB, prefix string) *Netns {
	t.Helper()
	RequireRoot(t)
	n := &Netns{Name: UniqueName(prefix)}
	if out, err := exec.Command("ip", "netns", "add", n.Name).CombinedOutput(); err != nil {
		Unavailable(t, "ip netns add %s: %v: %s", n.Name, err, out)
	}
	t.Cleanup(func() { n.Delete() })
	n.MustRun(t, "ip", "link", "set", "lo", "up")
	return n
}

// Delete kills what still runs in the namespace and removes it.
func (n *Netns) Delete() {
	if pids, err := exec.Command("ip", "netns", "pids", n.Name).Output(); err == nil {
		for _, p := range strings.Fields(string(pids)) {
			_ = exec.Command("kill", "-9", p).Run()
		}
	}
	_ = exec.Command("ip", "netns", "del", n.Name).Run()
}

// Command returns an exec.Cmd that runs argv inside the namespace. It
// enters only the network namespace (nsenter --net), unlike `ip netns
// exec`, which also remounts /sys and so hides the host's bpffs: a loader
// run there would pin into a private bpffs that vanishes with it.
func (n *Netns) Command(ctx context.Context, argv ...string) *exec.Cmd {
	args := append([]string{"--net=/run/netns/" + n.Name, "--"}, argv...)
	return exec.CommandContext(ctx, "nsenter", args...)
}

// Run runs argv inside the namespace, bounded to 30 s, and returns its
// combined output.
func (n *Netns) Run(argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := n.Command(ctx, argv...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s in %s: %w: %s", strings.Join(argv, " "), n.Name, err, out)
	}
	return string(out), nil
}

// MustRun is Run that fails the test on error.
func (n *Netns) MustRun(t testing.TB, argv ...string) string {
	t.Helper()
	out, err := n.Run(argv...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Do runs fn on an OS thread switched into the namespace. Sockets and links
// created by fn stay in the namespace after the thread switches back, which
// lets a test process own sockets in several namespaces at once.
func (n *Netns) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is never unlocked: if switching back failed it must not
		// be reused, and a locked goroutine's thread dies with it.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := netns.GetFromName(n.Name)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			errc <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("returning from %s: %w", n.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Link connects two namespaces with a veth pair, ifA in a and ifB in b, each
// with the given address (CIDR, empty for none), both up.
func Link(t testing.TB, a *Netns, ifA, addrA string, b *Netns, ifB, addrB string) {
	t.Helper()
	tmp := UniqueName("xv")
	tmpPeer := UniqueName("xv")
	if out, err := exec.Command("ip", "link", "add", tmp, "type", "veth", "peer", "name", tmpPeer).CombinedOutput(); err != nil {
		t.Fatalf("veth: %v: %s", err, out)
	}
	for _, s := range [][]string{
		{"ip", "link", "set", tmp, "netns", a.Name, "name", ifA},
		{"ip", "link", "set", tmpPeer, "netns", b.Name, "name", ifB},
	} {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			_ = exec.Command("ip", "link", "del", tmp).Run()
			t.Fatalf("%v: %v: %s", s, err, out)
		}
	}
	for _, side := range []struct {
		ns        *Netns
		ifc, addr string
	}{{a, ifA, addrA}, {b, ifB, addrB}} {
		if side.addr != "" {
			side.ns.MustRun(t, "ip", "addr", "add", side.addr, "dev", side.ifc)
		}
		side.ns.MustRun(t, "ip", "link", "set", side.ifc, "up")
	}
}

// InOwnNetns makes a test binary run inside a network namespace of its
// own, so tests that talk over a loopback interface never touch the
// host's: as root, the first call re-executes the binary under `nsenter
// --net` in a fresh namespace whose loopback also carries addrs (e.g.
// 169.254.x.y/32), waits for it and returns its exit code with ok false;
// inside that namespace (or when not root, where such tests skip or fail
// by testenv's rules) it returns ok true and the caller runs m.Run().
//
//	func TestMain(m *testing.M) {
//		if code, ok := testenv.InOwnNetns(m, "169.254.250.1/32"); !ok {
//			os.Exit(code)
//		}
//		os.Exit(m.Run())
//	}
func InOwnNetns(m *testing.M, addrs ...string) (code int, ok bool) {
	const env = "XWAN_TEST_OWN_NETNS"
	if os.Getenv(env) != "" || os.Geteuid() != 0 {
		return 0, true
	}
	name := UniqueName("xwt")
	fail := func(err error) (int, bool) {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1, false
	}
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fail(fmt.Errorf("ip netns add: %v: %s", err, out))
	}
	n := &Netns{Name: name}
	defer n.Delete()
	setup := [][]string{{"ip", "link", "set", "lo", "up"}}
	for _, a := range addrs {
		setup = append(setup, []string{"ip", "addr", "add", a, "dev", "lo"})
	}
	for _, c := range setup {
		if out, err := n.Run(c...); err != nil {
			return fail(fmt.Errorf("%v: %s", err, out))
		}
	}
	cmd := n.Command(context.Background(), append([]string{os.Args[0]}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), env+"="+name)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, false
	case errors.As(err, &ee):
		return ee.ExitCode(), false
	}
	return fail(err)
}
