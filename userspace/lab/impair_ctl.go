package lab

// The control socket of `xwan-lab up`: one JSON request per connection,
// one JSON response. `xwan-lab impair` finds it through a well-known file
// naming the lab's directory.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RunDir holds one file per running impairable lab, <prefix>.dir, with
// the lab's directory (where its control socket lives).
const RunDir = "/run/xwan-lab"

// ControlSocket is the control socket of the lab with that directory.
func ControlSocket(dir string) string { return filepath.Join(dir, "lab.sock") }

// DirFile is the well-known file of a lab prefix.
func DirFile(prefix string) string { return filepath.Join(RunDir, prefix+".dir") }

// FindControl returns the control socket of the running lab with that
// prefix.
func FindControl(prefix string) (string, error) {
	b, err := os.ReadFile(DirFile(prefix))
	if err != nil {
		return "", fmt.Errorf("no running lab %q (is `xwan-lab up --prefix %s` running?): %w", prefix, prefix, err)
	}
	return ControlSocket(strings.TrimSpace(string(b))), nil
}

// ControlRequest is one request on the control socket. Op "impair" sets
// Impairment on Dir of Site's Link; "clear" clears Site's Link (every
// link when Site and Link are empty); "show" changes nothing. Every
// response lists the links concerned (all of them for "show" and a
// clear of everything).
type ControlRequest struct {
	Op         string     `json:"op"`
	Site       string     `json:"site,omitempty"`
	Link       string     `json:"link,omitempty"`
	Dir        string     `json:"dir,omitempty"`
	Impairment Impairment `json:"impairment"`
}

// ControlResponse answers a ControlRequest.
type ControlResponse struct {
	Error string       `json:"error,omitempty"`
	Links []LinkStatus `json:"links,omitempty"`
}

// Control performs one request on a control socket.
func Control(socket string, req ControlRequest) ([]LinkStatus, error) {
	c, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return nil, err
	}
	var resp ControlResponse
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return nil, fmt.Errorf("control socket %s: %w", socket, err)
	}
	if resp.Error != "" {
		return nil, errors.New(resp.Error)
	}
	return resp.Links, nil
}

func (l *Lab) control(req ControlRequest) ([]LinkStatus, error) {
	one := func() ([]LinkStatus, error) {
		b, err := l.bridge(req.Site, req.Link)
		if err != nil {
			return nil, err
		}
		return []LinkStatus{b.status()}, nil
	}
	switch req.Op {
	case "show":
		if req.Site != "" || req.Link != "" {
			return one()
		}
		return l.ImpairStatus(), nil
	case "clear":
		if req.Site == "" && req.Link == "" {
			for _, st := range l.ImpairStatus() {
				if err := l.Clear(st.Site, st.Link); err != nil {
					return nil, err
				}
			}
			return l.ImpairStatus(), nil
		}
		if err := l.Clear(req.Site, req.Link); err != nil {
			return nil, err
		}
		return one()
	case "impair":
		dir, err := ParseDirection(req.Dir)
		if err != nil {
			return nil, err
		}
		if err := l.Impair(req.Site, req.Link, dir, req.Impairment); err != nil {
			return nil, err
		}
		return one()
	}
	return nil, fmt.Errorf("unknown op %q (impair, clear, show)", req.Op)
}

// ServeControl listens on the lab's control socket (ControlSocket of
// Opts.Dir, mode 0600) and writes DirFile(Opts.Prefix). stop closes the
// socket, waits for the requests in progress and removes both files.
func (l *Lab) ServeControl() (stop func(), err error) {
	sock := ControlSocket(l.Opts.Dir)
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	dirFile := DirFile(l.Opts.Prefix)
	if err := os.MkdirAll(RunDir, 0o755); err != nil {
		ln.Close()
		return nil, err
	}
	if err := os.WriteFile(dirFile, []byte(l.Opts.Dir+"\n"), 0o644); err != nil {
		ln.Close()
		return nil, err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				l.serveControlConn(c)
			}()
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			ln.Close()
			wg.Wait()
			_ = os.Remove(sock)
			// Only our own: a newer lab with the prefix may have taken it.
			if b, err := os.ReadFile(dirFile); err == nil && strings.TrimSpace(string(b)) == l.Opts.Dir {
				_ = os.Remove(dirFile)
			}
		})
	}, nil
}

func (l *Lab) serveControlConn(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var req ControlRequest
	var resp ControlResponse
	if err := json.NewDecoder(io.LimitReader(c, 1<<16)).Decode(&req); err != nil {
		resp.Error = "bad request: " + err.Error()
	} else if links, err := l.control(req); err != nil {
		resp.Error = err.Error()
	} else {
		resp.Links = links
	}
	_ = json.NewEncoder(c).Encode(resp)
}

// ParseLoss reads a loss as a percentage ("5%", "0.5%") or a probability
// ("0.05").
func ParseLoss(s string) (float64, error) {
	pct := strings.HasSuffix(s, "%")
	v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "%")), 64)
	if err != nil {
		return 0, fmt.Errorf("loss %q: want a percentage (5%%) or a probability (0.05)", s)
	}
	if pct {
		v /= 100
	}
	if v < 0 || v > 1 {
		return 0, fmt.Errorf("loss %q: out of 0%%..100%% (a bare number is a probability: write 5%% for five percent)", s)
	}
	return v, nil
}

// FormatStatus prints link statuses for people.
func FormatStatus(links []LinkStatus) string {
	var b bytes.Buffer
	for _, st := range links {
		fmt.Fprintf(&b, "%s %s (bridge netns %s)\n", st.Site, st.Link, st.Namespace)
		for _, d := range []struct {
			name string
			s    DirStatus
		}{{"to-router", st.ToRouter}, {"from-router", st.FromRouter}} {
			c := d.s.Counters
			fmt.Fprintf(&b, "  %-11s %-40s forwarded %d (%d bytes), lost %d, blackholed %d, delayed %d, queued %d, queue drops %d, errors %d\n",
				d.name, d.s.Impairment, c.Forwarded, c.Bytes, c.DroppedLoss, c.DroppedBlackhole, c.Delayed, c.Queued, c.DroppedQueue, c.Errors)
		}
	}
	return b.String()
}
