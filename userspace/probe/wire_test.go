package probe

import (
	"bytes"
	"errors"
	"testing"
)

func TestWireRoundTrip(t *testing.T) {
	p := Packet{Flags: FlagEcho, Seq: 0xdeadbeef, Sent: 1<<63 + 5, EchoSeq: 7, EchoSent: 123456789, Hold: 42}
	b := p.Marshal()
	if len(b) != Len {
		t.Fatalf("length %d, want %d", len(b), Len)
	}
	want := []byte{
		1, 1, 0, 0, 0xde, 0xad, 0xbe, 0xef,
		0x80, 0, 0, 0, 0, 0, 0, 5,
		0, 0, 0, 0, 0x07, 0x5b, 0xcd, 0x15,
		0, 0, 0, 0, 0, 0, 0, 42,
		0, 0, 0, 7,
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("layout\n got %x\nwant %x", b, want)
	}
	q, err := Unmarshal(b)
	if err != nil || q != p {
		t.Fatalf("round trip: %+v, %v", q, err)
	}
	// Padding after the version 1 fields is ignored; reserved bytes too.
	b[2], b[3] = 0xff, 0xff
	q, err = Unmarshal(append(b, 9, 9, 9))
	if err != nil || q != p {
		t.Fatalf("padded: %+v, %v", q, err)
	}
	if got := p.Append([]byte{0xaa}); got[0] != 0xaa || len(got) != Len+1 {
		t.Fatal("Append must append")
	}
}

func TestWireErrors(t *testing.T) {
	good := Packet{Seq: 1}.Marshal()
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"short", good[:Len-1], ErrShort},
		{"version 0", append([]byte{0}, good[1:]...), ErrVersion},
		{"version 2", append([]byte{2}, good[1:]...), ErrVersion},
		{"version 2, short", []byte{2}, ErrVersion},
	} {
		if _, err := Unmarshal(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}
