package tunnel

import (
	"net/netip"
	"testing"
)

func TestInnerMTU(t *testing.T) {
	v4 := netip.MustParseAddr("198.18.0.1")
	v6 := netip.MustParseAddr("2001:db8::1")
	tests := []struct {
		link  int
		outer netip.Addr
		want  int
	}{
		// 1500 - 28 (IPv4+UDP) - 13 (DTLS header) - 8 (nonce) - 16 (tag) - 1 (frame type)
		{1500, v4, 1434},
		// 1500 - 48 (IPv6+UDP) - 37 - 1
		{1500, v6, 1414},
		{1500, netip.MustParseAddr("::ffff:198.18.0.1"), 1434}, // IPv4-mapped: IPv4 on the wire
		{1492, v4, 1426}, // PPPoE
		{9000, v6, 8914},
		{134, v4, 68}, // the smallest link MTU that still works
	}
	for _, tt := range tests {
		got, err := InnerMTU(tt.link, tt.outer)
		if err != nil || got != tt.want {
			t.Errorf("InnerMTU(%d, %v) = %d, %v; want %d", tt.link, tt.outer, got, err, tt.want)
		}
	}
	if got, err := InnerMTU(133, v4); err == nil {
		t.Errorf("InnerMTU(133, IPv4) = %d, want an error", got)
	}
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Min: 100, Max: 1000}
	tests := []struct {
		n    int
		r    float64
		want int64
	}{
		{0, 0, 50}, {0, 0.999, 99}, // Min, jittered down by up to half
		{1, 0, 100}, {2, 0, 200}, {3, 0, 400}, {3, 0.5, 600},
		{4, 0, 500}, {4, 0.999, 999}, // capped at Max
		{1000, 0, 500}, // no overflow however many failures
	}
	for _, tt := range tests {
		if got := b.delay(tt.n, tt.r); int64(got) != tt.want {
			t.Errorf("delay(%d, %v) = %d, want %d", tt.n, tt.r, got, tt.want)
		}
	}
}
