package bgp

import (
	"os"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// The configuration examples in docs/bgp.md must load with the struct
// tags and pass validation, so the page cannot drift from the code.
func TestDocsExamplesValidate(t *testing.T) {
	raw, err := os.ReadFile("../../docs/bgp.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(raw), "```yaml\n")[1:]
	if len(blocks) != 2 {
		t.Fatalf("found %d yaml examples, want 2", len(blocks))
	}
	for i, b := range blocks {
		b, _, _ = strings.Cut(b, "```")
		var doc struct {
			BGP Config `yaml:"bgp"`
		}
		if err := yaml.Unmarshal([]byte(b), &doc); err != nil {
			t.Fatalf("example %d: %v", i+1, err)
		}
		if err := doc.BGP.Validate(); err != nil {
			t.Errorf("example %d: %v", i+1, err)
		}
		if len(doc.BGP.Neighbors) == 0 || doc.BGP.Neighbors[0].PeerASN != 12076 {
			t.Errorf("example %d: neighbours not read: %+v", i+1, doc.BGP)
		}
	}
	// Spot-check the types that need conversions: durations, addresses,
	// the restart policy.
	var doc struct {
		BGP Config `yaml:"bgp"`
	}
	b, _, _ := strings.Cut(blocks[0], "```")
	if err := yaml.Unmarshal([]byte(b), &doc); err != nil {
		t.Fatal(err)
	}
	n := doc.BGP.Neighbors[0]
	if n.HoldTime != 90*time.Second || n.PeerAddress.String() != "169.254.10.2" ||
		n.PrefixLimitRestart.After != 5*time.Minute || n.Prepend != 2 || !doc.BGP.Kernel.Install {
		t.Errorf("first example read as %+v", n)
	}
}
