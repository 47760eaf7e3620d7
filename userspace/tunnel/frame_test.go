package tunnel

import (
	"bytes"
	"errors"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	for _, ft := range []FrameType{FrameIPv4, FrameIPv6, FrameProbe, FrameProbeReply, FrameControl} {
		for _, payload := range [][]byte{nil, {0}, []byte("a packet")} {
			b, err := Encode(ft, payload)
			if err != nil {
				t.Fatalf("Encode(%v, %q): %v", ft, payload, err)
			}
			if len(b) != FrameHeaderLen+len(payload) || b[0] != byte(ft) {
				t.Fatalf("Encode(%v, %q) = %x", ft, payload, b)
			}
			got, p, err := Decode(b)
			if err != nil || got != ft || !bytes.Equal(p, payload) {
				t.Errorf("Decode(%x) = %v, %q, %v", b, got, p, err)
			}
		}
	}
}

func TestFrameTypeValues(t *testing.T) {
	// The values are wire format: they must never change.
	want := map[FrameType]byte{FrameIPv4: 1, FrameIPv6: 2, FrameProbe: 3, FrameProbeReply: 4, FrameControl: 5}
	for ft, v := range want {
		if byte(ft) != v {
			t.Errorf("%v = %d, want %d", ft, byte(ft), v)
		}
	}
}

func TestFrameErrors(t *testing.T) {
	if _, _, err := Decode(nil); !errors.Is(err, ErrEmptyFrame) {
		t.Errorf("Decode(nil) = %v, want ErrEmptyFrame", err)
	}
	for _, b := range [][]byte{{0}, {6, 1, 2}, {0xff}} {
		if _, _, err := Decode(b); !errors.Is(err, ErrUnknownFrameType) {
			t.Errorf("Decode(%x) = %v, want ErrUnknownFrameType", b, err)
		}
	}
	for _, ft := range []FrameType{0, 6, 255} {
		if _, err := Encode(ft, nil); !errors.Is(err, ErrUnknownFrameType) {
			t.Errorf("Encode(%d) = %v, want ErrUnknownFrameType", ft, err)
		}
	}
}

func FuzzDecodeFrame(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 0x45, 0, 0, 20})
	f.Add([]byte{5})
	f.Add([]byte{6, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		ft, payload, err := Decode(b)
		if err != nil {
			if len(b) > 0 && b[0] >= 1 && b[0] <= 5 {
				t.Fatalf("Decode(%x) refused a known frame type: %v", b, err)
			}
			return
		}
		again, err := Encode(ft, payload)
		if err != nil {
			t.Fatalf("Encode of a decoded frame %x: %v", b, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("round trip: %x became %x", b, again)
		}
	})
}
