package gateway

import (
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"
)

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

// StartPprof serves the profiler when PprofEnv is set; xwand calls it at
// start.
func StartPprof() {
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
