package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckInterconnect: `xwand -check` accepts the cloud-interconnect
// example and names file, line and snake_case field in what it refuses.
func TestCheckInterconnect(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "xwand")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v: %s", err, out)
	}
	good, err := filepath.Abs("../../testdata/config/interconnect.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-check", good).CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != good+": ok" {
		t.Fatalf("good config: %v: %s", err, out)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	// The library's kebab-case spelling is not the file's; a keepalive
	// over a third of the hold time is refused before BGP ever starts.
	broken := strings.Replace(string(data), "peer_asn: 12076", "peer-asn: 12076", 1)
	broken = strings.Replace(broken, "keepalive: 30s", "keepalive: 40s", 1)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-check", bad).CombinedOutput()
	if err == nil {
		t.Fatalf("broken config accepted: %s", out)
	}
	line := func(text string) int { // 1-based line of the first text in broken
		return strings.Count(broken[:strings.Index(broken, text)], "\n") + 1
	}
	for _, want := range []string{
		fmt.Sprintf("%s:%d: bgp.neighbors[0].peer_asn: required", bad, line("- name: er-primary")),
		fmt.Sprintf("%s:%d: bgp.neighbors[0].peer-asn: unknown field (did you mean peer_asn?)", bad, line("peer-asn: 12076")),
		fmt.Sprintf("%s:%d: bgp.neighbors[0].keepalive: 40s is more than a third of the hold time (1m30s)", bad, line("keepalive: 40s")),
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
}
