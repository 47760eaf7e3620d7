package record

import (
	"bytes"
	"errors"
	"testing"
)

func TestSplit(t *testing.T) {
	rec := func(typ, epoch byte, seq byte, body string) []byte {
		return append([]byte{typ, 0xfe, 0xfd, 0, epoch, 0, 0, 0, 0, 0, seq, 0, byte(len(body))}, body...)
	}
	two := append(rec(22, 0, 7, "hello"), rec(23, 1, 9, "world!")...)
	h, r, rest, err := Split(two)
	if err != nil || h.Type != Handshake || h.Epoch != 0 || h.Seq != 7 || h.Length != 5 || string(r[HeaderLen:]) != "hello" {
		t.Fatalf("first record: %v %q %v", h, r, err)
	}
	h, r, rest, err = Split(rest)
	if err != nil || h.Type != ApplicationData || h.Epoch != 1 || h.Seq != 9 || string(r[HeaderLen:]) != "world!" || len(rest) != 0 {
		t.Fatalf("second record: %v %q %q %v", h, r, rest, err)
	}
	for _, tt := range []struct {
		b    []byte
		want error
	}{
		{nil, ErrTruncated},
		{rec(23, 1, 1, "x")[:12], ErrTruncated},
		{rec(23, 1, 1, "xyz")[:15], ErrTruncated},
		{rec(25, 1, 1, "x"), ErrContentType},
		{rec(19, 1, 1, "x"), ErrContentType},
		{append([]byte{23, 3, 3}, rec(23, 1, 1, "x")[3:]...), ErrVersion},
	} {
		if _, _, _, err := Split(tt.b); !errors.Is(err, tt.want) {
			t.Errorf("Split(%x) = %v, want %v", tt.b, err, tt.want)
		}
	}
}

func FuzzSplit(f *testing.F) {
	f.Add([]byte{23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 'x'})
	f.Add([]byte{22, 0xfe, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 21, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		rest := b
		for len(rest) > 0 {
			h, rec, r, err := Split(rest)
			if err != nil {
				return
			}
			if len(rec) != HeaderLen+h.Length || len(rec)+len(r) != len(rest) || !bytes.Equal(rec, rest[:len(rec)]) {
				t.Fatalf("Split(%x) = %v, %x, %x", rest, h, rec, r)
			}
			var hdr [HeaderLen]byte
			putHeader(hdr[:], h.Type, h.Epoch, h.Seq, h.Length)
			hdr[1], hdr[2] = byte(h.Version>>8), byte(h.Version)
			if !bytes.Equal(hdr[:], rec[:HeaderLen]) {
				t.Fatalf("header %v re-encodes as %x, was %x", h, hdr, rec[:HeaderLen])
			}
			rest = r
		}
	})
}
