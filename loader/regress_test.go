package loader

import (
	"encoding/hex"
	"math/rand/v2"
	"testing"

	"github.com/xwan-dev/xwan/userspace/policy/policytest"
	"github.com/xwan-dev/xwan/userspace/verdict"
)

// Frames on which the kernel and the Go model once disagreed, found by
// TestDifferential: each must keep getting the same verdict from both.
var regressions = []struct {
	name, frame string
	reason      verdict.Reason
}{
	// IPv6 hop-by-hop, fragment (offset 0), then a hop-by-hop header
	// claiming 144 bytes of a 65-byte payload, followed by GRE: the L4
	// header starts past the end of the frame.
	{"extension header past the end", "020000000002020000000001810000148100001e86dd600000000041004020010db80007020000000000000000bb20010db80007030000000000000000f22c0000000000000000000000000000002f110000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000", verdict.TruncL4},
}

func TestParserRegressions(t *testing.T) {
	d := openTest(t)
	r := rand.New(rand.NewPCG(1, 1))
	sc := policytest.RandomScenario(r, 20)
	model := loadScenario(t, d, sc)
	for _, tc := range regressions {
		frame, err := hex.DecodeString(tc.frame)
		if err != nil {
			t.Fatal(err)
		}
		want := model.Classify(frame)
		before, _ := d.ReasonStats()
		act, meta, err := d.TestRun(frame)
		if err != nil {
			t.Fatal(err)
		}
		after, _ := d.ReasonStats()
		if want.Reason != tc.reason || act != want.Action || (meta == nil) != (want.Meta == nil) ||
			after[tc.reason].Packets != before[tc.reason].Packets+1 {
			t.Errorf("%s: kernel %s meta %v, model %s/%s, want %s", tc.name, act, meta, want.Action, want.Reason, tc.reason)
		}
	}
}
