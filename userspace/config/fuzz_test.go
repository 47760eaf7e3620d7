package config_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/xwan-dev/xwan/userspace/config"
	"github.com/xwan-dev/xwan/userspace/policy"
)

var messageLine = regexp.MustCompile(`^fuzz\.yaml:[1-9][0-9]*: `)

// FuzzParse: Parse never panics, every line of an error is
// "fuzz.yaml:LINE: ...", and what it accepts is complete and consistent.
func FuzzParse(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte(base + "rules:\n  - {name: r, protocol: tcp, destination_ports: 1-2, transport: off-cloud, link: wan1}\n"))
	f.Add([]byte(base + "anchors: {a: &a [x]}\nlan: {interfaces: *a}\n"))
	f.Add([]byte("site: a\n  role: b\n"))
	f.Add([]byte("- a\n- b\n"))
	f.Add([]byte(""))
	f.Add([]byte("\"a\\nb\": 1\nsite: \"x\\ny\"\n"))
	for _, name := range []string{"full.yaml", "minimal.yaml"} {
		data, err := os.ReadFile(filepath.Join("../../testdata/config", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse("fuzz.yaml", data)
		if err != nil {
			if cfg != nil {
				t.Fatal("a Config came back with the error")
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !messageLine.MatchString(line) {
					t.Fatalf("message without file and line: %q", line)
				}
			}
			return
		}
		if cfg.Role == "" || cfg.Tunnel.Port == 0 || cfg.Tunnel.Keepalive <= 0 || cfg.Tunnel.Keepalive >= config.MaxKeepalive ||
			cfg.Tunnel.ProbeInterval == 0 || cfg.API.Socket == "" || cfg.BPF.PinRoot == "" || len(cfg.WAN) == 0 {
			t.Fatalf("defaults missing: %+v", cfg)
		}
		for _, w := range cfg.WAN {
			if w.Precedence < config.Active || w.Precedence > config.LastResort || w.Precedence == config.LastResort && w.OffCloud {
				t.Fatalf("link %+v", w)
			}
			if cfg.LinkID(w.Name) == 0 {
				t.Fatalf("link %q has no id", w.Name)
			}
		}
		if err := cfg.RuleSet().Validate(cfg.Topology()); err != nil {
			t.Fatalf("accepted rules that policy refuses: %v", err)
		}
		if _, err := policy.Compile(cfg.RuleSet(), cfg.Topology()); err != nil {
			t.Fatalf("Compile: %v", err)
		}
	})
}
