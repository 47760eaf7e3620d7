package gateway

import (
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"
)

// RekeyEnv names the environment variable that overrides how often the
// dialing side of each tunnel rekeys (a Go duration, at least 1s; default
// tunnel.DefaultRekeyInterval). It exists to exercise rekeys under load in
// benchmarks and lab runs (docs/bench.md) until the configuration file has
// a setting for it.
const RekeyEnv = "XWAND_REKEY_INTERVAL"

// rekeyInterval is the rekey interval for dialed tunnels (0: the default).
func rekeyInterval() time.Duration {
	d, err := time.ParseDuration(os.Getenv(RekeyEnv))
	if err != nil || d < time.Second {
		return 0
	}
	return d
}

// PprofEnv names the environment variable that, when set to a TCP address
// (e.g. 127.0.0.1:6060), makes xwand serve Go's profiling endpoints
// (/debug/pprof/...) there. It is read once, when the first gateway starts;
// xwand runs inside its site's network namespace, so the same address can
// serve every site of a lab:
//
//	nsenter --net=/run/netns/xp-a curl -o a.prof 'http://127.0.0.1:6060/debug/pprof/profile?seconds=10'
//
// It is a debugging aid for benchmarks (docs/bench.md), off by default.
const PprofEnv = "XWAND_PPROF"

func startPprof() {
	addr := os.Getenv(PprofEnv)
	if addr == "" {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
}

func init() { startPprof() }
