package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/xwan-dev/xwan/userspace/events"
	"github.com/xwan-dev/xwan/userspace/lab"
)

// failoverBench blackholes site a's active link under a 200 packets/s UDP
// stream from a's LAN host to b's, with default health settings, and
// measures the longest gap in arrivals, the datagrams lost and the time
// from the blackhole to the failover event. It runs trials times and
// reports the median trial (by gap).
type failoverBench struct{ trials int }

type failoverResult struct {
	gap, detect time.Duration
	lost        int
}

func (fb failoverBench) run(w io.Writer) error {
	dir, err := os.MkdirTemp("", "xwan-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if out, err := exec.Command("go", "build", "-o", dir+"/", "github.com/xwan-dev/xwan/cmd/xwand").CombinedOutput(); err != nil {
		return fmt.Errorf("go build xwand: %v: %s", err, out)
	}
	var results []failoverResult
	for i := 0; i < fb.trials; i++ {
		r, err := failoverTrial(filepath.Join(dir, "xwand"))
		if err != nil {
			return fmt.Errorf("trial %d: %w", i+1, err)
		}
		results = append(results, r)
	}
	sort.Slice(results, func(i, j int) bool { return results[i].gap < results[j].gap })
	m := results[len(results)/2]
	fmt.Fprintf(w, "failover blackhole_gap_ms=%.1f lost_pkts=%d detect_ms=%.1f\n",
		float64(m.gap.Microseconds())/1000, m.lost, float64(m.detect.Microseconds())/1000)
	return nil
}

func failoverTrial(xwand string) (failoverResult, error) {
	var r failoverResult
	l, err := lab.Up(lab.Options{Prefix: fmt.Sprintf("xf%d", os.Getpid()%10000), Xwand: xwand, Impairable: true})
	if err != nil {
		return r, err
	}
	defer l.Close()
	if err := l.WaitPaths(4, 30*time.Second); err != nil {
		return r, err
	}
	a, b := l.Site("a"), l.Site("b")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	failover := make(chan time.Time, 1)
	ready := make(chan struct{})
	go func() {
		started := false
		_ = a.Client().Follow(ctx, func(e events.Event) bool {
			if !started {
				started = true
				close(ready)
			}
			if e.Type == events.PathFailover {
				failover <- e.Time
				return false
			}
			return true
		})
	}()
	select {
	case <-ready:
	case <-ctx.Done():
		return r, fmt.Errorf("event stream did not start")
	}
	st, err := l.StartStream(a, b, 7100, 200)
	if err != nil {
		return r, err
	}
	if err := waitReceived(st, 400, 10*time.Second); err != nil {
		st.Stop()
		return r, err
	}
	hit := time.Now()
	if err := l.Impair("a", "wan1", lab.Both, lab.Impairment{Blackhole: true}); err != nil {
		st.Stop()
		return r, err
	}
	var at time.Time
	select {
	case at = <-failover:
	case <-ctx.Done():
		st.Stop()
		return r, fmt.Errorf("no failover event")
	}
	if err := waitReceived(st, 400, 10*time.Second); err != nil {
		st.Stop()
		return r, err
	}
	res := st.Stop()
	return failoverResult{gap: res.MaxGap, detect: at.Sub(hit), lost: res.Lost}, nil
}

func waitReceived(st *lab.Stream, n int, timeout time.Duration) error {
	want := st.Received() + n
	deadline := time.Now().Add(timeout)
	for st.Received() < want {
		if time.Now().After(deadline) {
			return fmt.Errorf("stream stalled at %d datagrams", st.Received())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}
