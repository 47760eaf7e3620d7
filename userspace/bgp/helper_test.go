package bgp

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/xwan-dev/xwan/userspace/testenv"
)

// The interop tests need gobgp inside the gateway's network namespace, and
// a namespace belongs to an OS thread while gobgp dials from goroutines on
// any thread. So the test binary re-executes itself under `ip netns exec`
// as a helper process that runs one Server and answers over HTTP on a unix
// socket (paths are not namespaced): /status, /routes, /events, /metrics,
// /swept, /enable. The helper stops cleanly when its stdin closes.

const (
	helperEnv       = "XWAN_BGP_HELPER"
	helperConfigEnv = "XWAN_BGP_HELPER_CONFIG"
	helperSockEnv   = "XWAN_BGP_HELPER_SOCK"
)

// helperConfig is what the test hands the helper.
type helperConfig struct {
	BGP      Config         `json:"bgp"`
	Networks []netip.Prefix `json:"networks"`
}

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(helperMain())
	}
	// The loopback tests talk over the loopback interface of a namespace
	// of their own, on link-local addresses, never the host's.
	if code, ok := testenv.InOwnNetns(m, loopA+"/32", loopB+"/32", loopC+"/32"); !ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// eventRecord is an Event as the helper reports it.
type eventRecord struct {
	Kind    string          `json:"kind"`
	Time    time.Time       `json:"time"`
	Summary string          `json:"summary"`
	Event   json.RawMessage `json:"event"`
}

func helperMain() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	fail := func(err error) int {
		log.Error("helper", "err", err)
		return 1
	}
	raw, err := os.ReadFile(os.Getenv(helperConfigEnv))
	if err != nil {
		return fail(err)
	}
	var hc helperConfig
	if err := json.Unmarshal(raw, &hc); err != nil {
		return fail(err)
	}
	var (
		mu     sync.Mutex
		events []eventRecord
	)
	onEvent := func(e Event) {
		b, _ := json.Marshal(e)
		mu.Lock()
		events = append(events, eventRecord{Kind: e.Kind(), Time: e.When(), Summary: e.Summary(), Event: b})
		mu.Unlock()
		log.Info("event", "kind", e.Kind(), "summary", e.Summary())
	}
	reg := prometheus.NewRegistry()
	srv, err := New(hc.BGP, Options{Logger: log, Registerer: reg, OnEvent: onEvent})
	if err != nil {
		return fail(err)
	}
	ctx := context.Background()
	if err := srv.SetNetworks(ctx, hc.Networks); err != nil {
		return fail(err)
	}
	if err := srv.Start(ctx); err != nil {
		return fail(err)
	}

	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, v any, err error) {
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		st, err := srv.Status(r.Context())
		reply(w, st, err)
	})
	mux.HandleFunc("/routes", func(w http.ResponseWriter, r *http.Request) {
		rs, err := srv.Routes(r.Context())
		reply(w, rs, err)
	})
	mux.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		reply(w, events, nil)
	})
	mux.HandleFunc("/swept", func(w http.ResponseWriter, r *http.Request) { reply(w, srv.SweptRoutes(), nil) })
	mux.HandleFunc("/enable", func(w http.ResponseWriter, r *http.Request) {
		reply(w, "ok", srv.EnableNeighbor(r.Context(), r.URL.Query().Get("name")))
	})
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	l, err := net.Listen("unix", os.Getenv(helperSockEnv))
	if err != nil {
		return fail(err)
	}
	go func() { _ = http.Serve(l, mux) }()
	fmt.Println("ready")

	stop := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-stop:
	case <-sig:
	}
	l.Close()
	if err := srv.Close(); err != nil {
		return fail(err)
	}
	return 0
}

// helper is the test's handle on a helper process.
type helper struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	client *http.Client
	exited chan error
}

// startHelper runs a Server inside ns with the given config and waits until
// it is ready.
func startHelper(t *testing.T, ns *testenv.Netns, hc helperConfig) *helper {
	t.Helper()
	dir := t.TempDir()
	cfgPath, sock := dir+"/config.json", dir+"/helper.sock"
	raw, err := json.Marshal(hc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := ns.Command(context.Background(), os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=1", helperConfigEnv+"="+cfgPath, helperSockEnv+"="+sock)
	cmd.Stderr = &testWriter{t: t, prefix: "helper: "}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, stdin: stdin, exited: make(chan error, 1)}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		ok := sc.Scan() && sc.Text() == "ready"
		ready <- ok
		_, _ = io.Copy(io.Discard, stdout)
		h.exited <- cmd.Wait()
	}()
	t.Cleanup(func() { h.stop(t) })
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("helper did not start (see its log above)")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("helper not ready after 30s")
	}
	h.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	return h
}

// stop closes stdin (a clean Close in the helper) and waits, killing the
// process if it does not exit within 10 s. Safe to call twice.
func (h *helper) stop(t *testing.T) {
	if h.cmd == nil {
		return
	}
	_ = h.stdin.Close()
	select {
	case err := <-h.exited:
		if err != nil {
			t.Errorf("helper exited: %v", err)
		}
	case <-time.After(10 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.exited
		t.Errorf("helper did not stop within 10s; killed")
	}
	h.cmd = nil
}

// kill ends the helper with SIGKILL: no cleanup, kernel routes stay.
func (h *helper) kill(t *testing.T) {
	t.Helper()
	// ip netns exec execs the helper in place, so this is its pid.
	if err := h.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-h.exited
	h.cmd = nil
}

func (h *helper) get(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := h.client.Get("http://helper" + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", path, resp.Status, body)
	}
	if s, ok := v.(*string); ok {
		*s = string(body)
		return
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
}

func (h *helper) status(t *testing.T) map[string]NeighborStatus {
	t.Helper()
	var sts []NeighborStatus
	h.get(t, "/status", &sts)
	out := map[string]NeighborStatus{}
	for _, s := range sts {
		out[s.Name] = s
	}
	return out
}

func (h *helper) events(t *testing.T, kind string) []eventRecord {
	t.Helper()
	var all []eventRecord
	h.get(t, "/events", &all)
	var out []eventRecord
	for _, e := range all {
		if kind == "" || e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// testWriter sends a child's output to the test log, line by line.
type testWriter struct {
	t      *testing.T
	prefix string
	mu     sync.Mutex
	buf    []byte
	done   bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		line := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		if !w.done {
			func() {
				// The test may have finished while the child still writes.
				defer func() {
					if recover() != nil {
						w.done = true
					}
				}()
				w.t.Log(w.prefix + line)
			}()
		}
	}
	return len(p), nil
}
