package main

import (
	"bytes"
	"regexp"
	"strconv"
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
