package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Server serves a Provider on a unix socket.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	path string
}

// Listen creates the socket (replacing a stale one) with mode 0600 and
// starts serving.
func Listen(socket string, p Provider) (*Server, error) {
	if err := os.MkdirAll(filepath.Dir(socket), 0o700); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", socket, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s: another xwand is listening there", socket)
	}
	_ = os.Remove(socket)
	old := umask(0o177)
	ln, err := net.Listen("unix", socket)
	umask(old)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(socket, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) { reply(w, p.Status) })
	mux.HandleFunc("GET /v1/paths", func(w http.ResponseWriter, r *http.Request) { reply(w, p.Paths) })
	mux.HandleFunc("GET /v1/flows", func(w http.ResponseWriter, r *http.Request) { reply(w, p.Flows) })
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) { serveEvents(w, r, p) })
	mux.Handle("GET /metrics", p.MetricsHandler())
	registerInterconnect(mux, p) // routes, bgp, monitors, test-connectivity (interconnect.go)
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln: ln, path: socket}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func reply[T any](w http.ResponseWriter, get func() (T, error)) {
	v, err := get()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func serveEvents(w http.ResponseWriter, r *http.Request, p Provider) {
	bus := p.Events()
	if r.URL.Query().Get("follow") == "" {
		reply(w, func() (any, error) { return bus.History(), nil })
		return
	}
	// Subscribe before reading the history so nothing falls between.
	ch, stop := bus.Subscribe(1024)
	defer stop()
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	var last uint64
	for _, e := range bus.History() {
		_ = enc.Encode(e)
		last = e.Seq
	}
	if flusher != nil {
		flusher.Flush()
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case e, ok := <-ch:
			if !ok {
				return
			}
			if e.Seq <= last {
				continue
			}
			if err := enc.Encode(e); err != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
	}
}

// Close stops serving and removes the socket.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = s.srv.Close()
	}
	_ = os.Remove(s.path)
	return err
}
