package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheck runs `xwand -check` on a good and a broken file, as a user
// would before deploying a configuration.
func TestCheck(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "xwand")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v: %s", err, out)
	}
	good, err := filepath.Abs("../../testdata/config/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-check", good).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != good+": ok" {
		t.Fatalf("good config: %v: %s", err, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	// Make the first link's precedence 4.
	broken := strings.Replace(string(data), "precedence: 1", "precedence: 4", 1)
	if broken == string(data) {
		t.Fatal("full.yaml has no `precedence: 1` to break")
	}
	if err := os.WriteFile(bad, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(bin, "-check", bad).CombinedOutput()
	if err == nil {
		t.Fatalf("broken config accepted: %s", out)
	}
	if !strings.HasPrefix(string(out), bad+":") || !strings.Contains(string(out), "wan[0].precedence: must be 1 (active), 2 (passive) or 3 (last resort), got 4") {
		t.Fatalf("error does not name file, line and field:\n%s", out)
	}
}
