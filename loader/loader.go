// Package loader puts xwan's BPF programs into the kernel and keeps them
// there: it loads the objects, pins maps, programs and XDP links under a pin
// root (/sys/fs/bpf/xwan by default), attaches XDP to links (native where
// the driver supports it, generic otherwise), and re-adopts what is pinned
// when xwand restarts, so traffic the kernel passes keeps flowing while the
// daemon is down. Every map has a typed accessor; callers never build raw
// byte slices.
package loader

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// DefaultPinRoot is where xwand pins everything.
const DefaultPinRoot = "/sys/fs/bpf/xwan"

// Pin names of the two programs and of their XDP links.
const (
	progPin          = "prog_xdp_lan"
	linkPinPrefix    = "link_xdp_lan_"
	wanProgPin       = "prog_xdp_wan"
	wanLinkPinPrefix = "link_xdp_wan_"
)

// Options configure Open.
type Options struct {
	// PinRoot is the bpffs directory for pins; DefaultPinRoot when empty.
	// Tests use their own.
	PinRoot string
	// FlowTableSize overrides the flow cache's entries (default 131072).
	FlowTableSize uint32
}

// Datapath is the loaded data path: the LAN program (classifier) and the
// WAN program (tunnel port guard), and their maps.
type Datapath struct {
	pinRoot string
	objs    xdplanObjects
	wan     xdpwanObjects
	// Adopted is true when the running LAN program was found pinned and kept.
	Adopted bool
}

// Open loads the LAN program and its maps, reusing whatever is pinned under
// the pin root: pinned maps keep their contents, and a pinned program with
// the same instructions (same tag) stays the one that runs. A different
// program (an upgrade) replaces it in every pinned XDP link atomically.
func Open(opts Options) (*Datapath, error) {
	root := opts.PinRoot
	if root == "" {
		root = DefaultPinRoot
	}
	if err := ensureBPFFS(root); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("pin root %s: %w (is bpffs mounted on /sys/fs/bpf?)", root, err)
	}
	spec, err := loadXdplan()
	if err != nil {
		return nil, fmt.Errorf("reading embedded BPF object: %w", err)
	}
	if opts.FlowTableSize > 0 {
		spec.Maps["flows"].MaxEntries = opts.FlowTableSize
	}
	d := &Datapath{pinRoot: root}
	opts2 := &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: root}}
	if err := spec.LoadAndAssign(&d.objs, opts2); err != nil {
		return nil, loadError("xdp_lan", err)
	}
	wanSpec, err := loadXdpwan()
	if err != nil {
		d.objs.Close()
		return nil, fmt.Errorf("reading embedded BPF object: %w", err)
	}
	if err := wanSpec.LoadAndAssign(&d.wan, opts2); err != nil {
		d.objs.Close()
		return nil, loadError("xdp_wan", err)
	}
	adopted, err := d.adoptProgram(&d.objs.XdpLan, progPin, linkPinPrefix)
	if err == nil {
		d.Adopted = adopted
		_, err = d.adoptProgram(&d.wan.XdpWan, wanProgPin, wanLinkPinPrefix)
	}
	if err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func loadError(what string, err error) error {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		return fmt.Errorf("loading %s: %+v", what, ve)
	}
	return fmt.Errorf("loading %s (a pinned map from an incompatible version? `xwanctl cleanup` removes them): %w", what, err)
}

// adoptProgram keeps a pinned program with the same tag as *prog (the same
// instructions), or replaces it with *prog in every pinned link.
func (d *Datapath) adoptProgram(prog **ebpf.Program, pin, linkPrefix string) (bool, error) {
	path := filepath.Join(d.pinRoot, pin)
	old, err := ebpf.LoadPinnedProgram(path, nil)
	if errors.Is(err, fs.ErrNotExist) {
		return false, (*prog).Pin(path)
	}
	if err != nil {
		return false, fmt.Errorf("pinned program %s: %w", path, err)
	}
	oldInfo, err1 := old.Info()
	newInfo, err2 := (*prog).Info()
	if err1 == nil && err2 == nil && oldInfo.Tag == newInfo.Tag {
		(*prog).Close()
		*prog = old
		return true, nil
	}
	// An upgrade: move every pinned link to the new program, then the pin.
	old.Close()
	links, err := d.pinnedLinks(linkPrefix)
	if err != nil {
		return false, err
	}
	for _, name := range links {
		l, err := link.LoadPinnedLink(filepath.Join(d.pinRoot, name), nil)
		if err != nil {
			return false, fmt.Errorf("pinned link %s: %w", name, err)
		}
		err = l.Update(*prog)
		l.Close()
		if err != nil {
			return false, fmt.Errorf("upgrading program of %s: %w", name, err)
		}
	}
	if err := os.Remove(path); err != nil {
		return false, err
	}
	return false, (*prog).Pin(path)
}

func (d *Datapath) pinnedLinks(prefix string) ([]string, error) {
	entries, err := os.ReadDir(d.pinRoot)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// PinRoot returns the pin root in use.
func (d *Datapath) PinRoot() string { return d.pinRoot }

// Program returns the LAN XDP program.
func (d *Datapath) Program() *ebpf.Program { return d.objs.XdpLan }

// AttachMode says how a program is attached.
type AttachMode string

const (
	ModeNative  AttachMode = "native"
	ModeGeneric AttachMode = "generic"
	ModeAdopted AttachMode = "adopted" // a pinned link from an earlier run
)

// Attach attaches the LAN program to a LAN interface and pins the link, or
// adopts the link already pinned for it. It returns the mode in use.
func (d *Datapath) Attach(ifname string) (AttachMode, error) {
	return d.attach(d.objs.XdpLan, linkPinPrefix, ifname)
}

// AttachWAN attaches the WAN program (the tunnel port guard) to a WAN link.
func (d *Datapath) AttachWAN(ifname string) (AttachMode, error) {
	return d.attach(d.wan.XdpWan, wanLinkPinPrefix, ifname)
}

func (d *Datapath) attach(prog *ebpf.Program, prefix, ifname string) (AttachMode, error) {
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		return "", err
	}
	path := filepath.Join(d.pinRoot, prefix+ifname)
	if l, err := link.LoadPinnedLink(path, nil); err == nil {
		defer l.Close()
		info, err := l.Info()
		if err != nil {
			return "", err
		}
		if xdp := info.XDP(); xdp != nil && int(xdp.Ifindex) == ifc.Index {
			return ModeAdopted, nil
		}
		// A stale pin (the interface was re-created): drop it.
		if err := l.Unpin(); err != nil {
			return "", err
		}
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc.Index, Flags: link.XDPDriverMode})
	mode := ModeNative
	if err != nil {
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc.Index, Flags: link.XDPGenericMode})
		mode = ModeGeneric
		if err != nil {
			return "", fmt.Errorf("attaching XDP to %s: %w", ifname, err)
		}
	}
	defer l.Close()
	if err := l.Pin(path); err != nil {
		return "", fmt.Errorf("pinning XDP link of %s: %w", ifname, err)
	}
	return mode, nil
}

// Detach removes xwan's programs from the interface and their pins.
func (d *Datapath) Detach(ifname string) error {
	var errs []error
	found := false
	for _, prefix := range []string{linkPinPrefix, wanLinkPinPrefix} {
		l, err := link.LoadPinnedLink(filepath.Join(d.pinRoot, prefix+ifname), nil)
		if err != nil {
			continue
		}
		found = true
		errs = append(errs, l.Unpin(), l.Close())
	}
	if !found {
		return fmt.Errorf("no pinned XDP link for %s", ifname)
	}
	return errors.Join(errs...)
}

// Close releases this process's handles. Pinned maps, programs and links
// stay in the kernel: XDP keeps running until Cleanup or Detach.
func (d *Datapath) Close() error { return errors.Join(d.objs.Close(), d.wan.Close()) }

// Cleanup removes everything xwan pinned under the pin root (detaching its
// XDP links) and nothing else, then the pin root if it is empty.
func Cleanup(pinRoot string) error {
	if pinRoot == "" {
		pinRoot = DefaultPinRoot
	}
	names := []string{progPin, wanProgPin}
	for _, load := range []func() (*ebpf.CollectionSpec, error){loadXdplan, loadXdpwan} {
		spec, err := load()
		if err != nil {
			return err
		}
		for name, m := range spec.Maps {
			if m.Pinning == ebpf.PinByName {
				names = append(names, name)
			}
		}
	}
	entries, err := os.ReadDir(pinRoot)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), linkPinPrefix) || strings.HasPrefix(e.Name(), wanLinkPinPrefix) {
			names = append(names, e.Name())
		}
	}
	var errs []error
	for _, n := range names {
		if err := os.Remove(filepath.Join(pinRoot, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if rest, err := os.ReadDir(pinRoot); err == nil && len(rest) == 0 {
		errs = append(errs, os.Remove(pinRoot))
	}
	return errors.Join(errs...)
}
