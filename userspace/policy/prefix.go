package policy

import "net/netip"

// Addr16 is an address in the kernel's form: IPv4 is IPv4-mapped.
type Addr16 = [16]byte

// Mapped returns the kernel's form of a prefix: IPv4 prefixes become
// ::ffff:a.b.c.d/(96+n). An IPv6 rule prefix shorter than /96 that covers
// ::ffff:0:0/96 (such as ::/0) therefore also matches IPv4 packets.
func Mapped(p netip.Prefix) (addr Addr16, bits int) {
	p = p.Masked()
	if p.Addr().Is4() {
		return netip.AddrFrom16(p.Addr().As16()).As16(), p.Bits() + 96
	}
	return p.Addr().As16(), p.Bits()
}

// Contains16 reports whether the mapped prefix (addr, bits) contains a.
func Contains16(addr Addr16, bits int, a Addr16) bool {
	full := bits / 8
	for i := 0; i < full; i++ {
		if addr[i] != a[i] {
			return false
		}
	}
	if rem := bits % 8; rem != 0 {
		mask := byte(0xff << (8 - rem))
		return addr[full]&mask == a[full]&mask
	}
	return true
}

type prefix16 struct {
	addr Addr16
	bits int
}

func mask16(a Addr16, bits int) Addr16 {
	var out Addr16
	full := bits / 8
	copy(out[:full], a[:full])
	if rem := bits % 8; rem != 0 {
		out[full] = a[full] & byte(0xff<<(8-rem))
	}
	return out
}

// PrefixTable is a longest-prefix-match table over mapped addresses, the Go
// twin of an LPM trie. It is small and obviously right rather than fast.
type PrefixTable[V any] struct {
	byLen [129]map[Addr16]V
}

// Set stores v for p (IPv4 or IPv6).
func (t *PrefixTable[V]) Set(p netip.Prefix, v V) {
	a, bits := Mapped(p)
	if t.byLen[bits] == nil {
		t.byLen[bits] = map[Addr16]V{}
	}
	t.byLen[bits][mask16(a, bits)] = v
}

// Delete removes p.
func (t *PrefixTable[V]) Delete(p netip.Prefix) {
	a, bits := Mapped(p)
	delete(t.byLen[bits], mask16(a, bits))
}

// Lookup returns the value of the longest prefix that contains a.
func (t *PrefixTable[V]) Lookup(a Addr16) (V, bool) {
	for bits := 128; bits >= 0; bits-- {
		if m := t.byLen[bits]; m != nil {
			if v, ok := m[mask16(a, bits)]; ok {
				return v, true
			}
		}
	}
	var zero V
	return zero, false
}
