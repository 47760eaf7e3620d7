package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/xwan-dev/xwan/userspace/lab"
)

// tunnelBench measures iperf3 TCP between the lab's LAN hosts through xwan,
// through wireguard-go and over the plain routed path, in one run and the
// same namespace layout, with 1 and with 4 streams.
type tunnelBench struct {
	seconds int
	streams []int
	binDir  string // holds xwand, xwanctl and wireguard-go
}

// buildTools builds xwand and wireguard-go (the Go module
// golang.zx2c4.com/wireguard, at the version go.mod pins) into dir.
func buildTools(dir string) error {
	for _, pkg := range []string{"github.com/xwan-dev/xwan/cmd/xwand", "golang.zx2c4.com/wireguard"} {
		out, err := exec.Command("go", "build", "-o", dir+"/", pkg).CombinedOutput()
		if err != nil {
			return fmt.Errorf("go build %s: %v: %s", pkg, err, out)
		}
	}
	// The wireguard module's main package builds as "wireguard".
	if _, err := os.Stat(filepath.Join(dir, "wireguard")); err == nil {
		return os.Rename(filepath.Join(dir, "wireguard"), filepath.Join(dir, "wireguard-go"))
	}
	return nil
}

func iperf(l *lab.Lab, streams, seconds int) (float64, error) {
	a, b := l.Site("a"), l.Site("b")
	out, err := l.In(a.Host, "iperf3", "-c", b.HostAddr.String(), "-t", fmt.Sprint(seconds), "-P", fmt.Sprint(streams), "-J")
	if err != nil {
		return 0, err
	}
	var res struct {
		End struct {
			SumReceived struct {
				Bps float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		return 0, fmt.Errorf("iperf3 output: %w", err)
	}
	if res.End.SumReceived.Bps <= 0 {
		return 0, fmt.Errorf("iperf3 measured nothing")
	}
	return res.End.SumReceived.Bps / 1e9, nil
}

func (tb tunnelBench) run(w io.Writer) error {
	if tb.binDir == "" {
		dir, err := os.MkdirTemp("", "xwan-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if err := buildTools(dir); err != nil {
			return err
		}
		tb.binDir = dir
	}
	l, err := lab.Up(lab.Options{Prefix: fmt.Sprintf("xb%d", os.Getpid()%10000), Xwand: filepath.Join(tb.binDir, "xwand"), NoDaemons: true, Keepalive: 5 * time.Second})
	if err != nil {
		return err
	}
	defer l.Close()
	b := l.Site("b")
	srv := l.Command(context.Background(), b.Host, "iperf3", "-s")
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	if err := lab.WaitListening(b.Host, 5201, 10*time.Second); err != nil {
		return err
	}
	results := map[string]map[int]float64{"plain": {}, "wireguard": {}, "xwan": {}}
	measure := func(name string) error {
		for _, n := range tb.streams {
			g, err := iperf(l, n, tb.seconds)
			if err != nil {
				return fmt.Errorf("%s, %d streams: %w", name, n, err)
			}
			results[name][n] = g
		}
		return nil
	}

	undo, err := l.PlainRouting()
	if err != nil {
		return err
	}
	err = measure("plain")
	undo()
	if err != nil {
		return err
	}
	stop, err := l.WireGuard(filepath.Join(tb.binDir, "wireguard-go"))
	if err != nil {
		return err
	}
	err = measure("wireguard")
	stop()
	if err != nil {
		return err
	}
	if err := l.StartAll(); err != nil {
		return err
	}
	if err := l.WaitPaths(4, 30*time.Second); err != nil {
		return err
	}
	if err := measure("xwan"); err != nil {
		return err
	}
	for _, n := range tb.streams {
		fmt.Fprintf(w, "tunnel streams=%d xwan_gbps=%.3f wireguard_go_gbps=%.3f plain_gbps=%.3f\n",
			n, results["xwan"][n], results["wireguard"][n], results["plain"][n])
	}
	return nil
}
