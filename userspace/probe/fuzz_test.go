package probe

import (
	"encoding/binary"
	"testing"
	"time"
)

// FuzzUnmarshal: whatever arrives, Unmarshal returns a packet or an error
// without panicking, and what it accepts re-encodes to the same fields.
func FuzzUnmarshal(f *testing.F) {
	f.Add(Packet{Seq: 1, Sent: 2}.Marshal())
	f.Add(Packet{Flags: FlagEcho, Seq: 3, Sent: 4, EchoSeq: 1, EchoSent: 2, Hold: 5}.Marshal())
	f.Add([]byte{1})
	f.Add([]byte{2, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Unmarshal(b)
		if err != nil {
			return
		}
		if len(b) < Len || b[0] != Version {
			t.Fatalf("accepted %x", b)
		}
		enc := p.Marshal()
		q, err := Unmarshal(enc)
		if err != nil || q != p {
			t.Fatalf("re-encoding changed %+v into %+v (%v)", p, q, err)
		}
		want := append([]byte(nil), b[:Len]...)
		want[2], want[3] = 0, 0 // reserved
		if string(enc) != string(want) {
			t.Fatalf("re-encoded %x as %x", b[:Len], enc)
		}
	})
}

// FuzzProber feeds a prober arbitrary replies and probes at arbitrary
// times, interleaved with its own probes: no panic, and the statistics
// stay within their bounds.
func FuzzProber(f *testing.F) {
	f.Add([]byte{0, 10, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(Packet{Flags: FlagEcho, EchoSeq: 0}.Marshal())
	f.Fuzz(func(t *testing.T, script []byte) {
		t0 := time.Unix(1000, 0)
		now := t0
		p := New(Config{}, now)
		var sent [][]byte
		for len(script) >= 2 {
			op, arg := script[0], script[1]
			script = script[2:]
			now = now.Add(time.Duration(arg) * 7 * time.Millisecond)
			switch op % 5 {
			case 0:
				if b, ok := p.Next(now); ok {
					sent = append(sent, b)
				}
			case 1: // a reply built from the rest of the script
				n := min(len(script), Len+int(arg%4))
				_ = p.OnReply(script[:n], now)
				script = script[n:]
			case 2: // a genuine reply to one of our probes
				if len(sent) > 0 {
					pk, _ := Unmarshal(sent[int(arg)%len(sent)])
					r := Packet{Flags: FlagEcho, EchoSeq: pk.Seq, EchoSent: pk.Sent}
					if len(script) >= 8 {
						r.Hold = binary.BigEndian.Uint64(script) >> (arg % 64)
						script = script[8:]
					}
					_ = p.OnReply(r.Marshal(), now)
				}
			case 3:
				n := min(len(script), int(arg%40))
				if reply, err := p.OnProbe(script[:n], now); err == nil {
					if _, err := Unmarshal(reply); err != nil {
						t.Fatalf("unreadable reply: %v", err)
					}
				}
				script = script[n:]
			case 4:
				p.Reset(now)
			}
			s := p.Stats(now)
			if s.Loss < 0 || s.Loss > 1 || s.Lost > s.Sent || s.RTTMin > s.RTTMax || s.RTT < 0 || s.Jitter < 0 ||
				s.RTTMean < s.RTTMin || s.RTTMean > s.RTTMax {
				t.Fatalf("stats out of bounds: %+v", s)
			}
			if d := p.NextDue(now); d.IsZero() {
				t.Fatal("no next due time")
			}
		}
	})
}
