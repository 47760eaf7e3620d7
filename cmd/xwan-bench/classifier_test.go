package main

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/xwan-dev/xwan/userspace/testenv"
)

// TestBenchClassifierOutput runs the benchmark as make bench-classifier
// does and checks it prints every case in the documented form. It checks
// no timing target: figures belong in docs/bench.md, not in assertions.
func TestBenchClassifierOutput(t *testing.T) {
	testenv.RequireRoot(t)
	var out bytes.Buffer
	if err := benchClassifier(&out); err != nil {
		t.Fatal(err)
	}
	lines := regexp.MustCompile(`(?m)^classify (baseline=xdp_pass|rules=(\d+) flow=(miss|hit)) ns_per_pkt=([0-9.]+)$`).FindAllStringSubmatch(out.String(), -1)
	want := []string{"baseline=xdp_pass"}
	for _, n := range []string{"1", "64", "1024", "4096"} {
		want = append(want, "rules="+n+" flow=miss", "rules="+n+" flow=hit")
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, l := range lines {
		if l[1] != want[i] {
			t.Errorf("line %d is %q, want %q", i, l[1], want[i])
		}
		if v, err := strconv.ParseFloat(l[4], 64); err != nil || v <= 0 {
			t.Errorf("line %d: figure %q", i, l[4])
		}
	}
}

// TestBenchTunnelOutput runs the tunnel benchmark briefly (1 s, 1 stream)
// and checks it measured all three paths and printed the documented line.
func TestBenchTunnelOutput(t *testing.T) {
	testenv.RequireRoot(t)
	var out bytes.Buffer
	if err := (tunnelBench{seconds: 1, streams: []int{1}}).run(&out); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^tunnel streams=1 xwan_gbps=([0-9.]+) wireguard_go_gbps=([0-9.]+) plain_gbps=([0-9.]+)\n$`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("output %q", out.String())
	}
	for _, v := range m[1:] {
		if f, _ := strconv.ParseFloat(v, 64); f <= 0 {
			t.Fatalf("a path measured nothing: %q", out.String())
		}
	}
}

// TestBenchFailoverOutput runs one failover trial and checks the line.
func TestBenchFailoverOutput(t *testing.T) {
	testenv.RequireRoot(t)
	var out bytes.Buffer
	if err := (failoverBench{trials: 1}).run(&out); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^failover blackhole_gap_ms=[0-9.]+ lost_pkts=[0-9]+ detect_ms=[0-9.]+\n$`).MatchString(out.String()) {
		t.Fatalf("output %q", out.String())
	}
	t.Log(strings.TrimSpace(out.String()))
}
