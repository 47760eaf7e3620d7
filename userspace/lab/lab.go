// Package lab builds xwan's lab on one machine: network namespaces for a
// router standing for the Internet and for sites, each site with a LAN
// host and a gateway with two WAN links, all addressed from 198.18.0.0/15.
// It writes the configurations and certificates, runs one xwand per site,
// and tears everything down again — its own names only. `xwan-lab`, `make
// demo` and the integration tests use it.
//
//	host-a ── lan0 [gw a] wan1 ─┐            ┌─ wan1 [gw b] lan0 ── host-b
//	198.18.10.0/24        wan2 ─┤── router ──├─ wan2        198.18.20.0/24
//	                            (198.18.101-104.0/24)
package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/xwan-dev/xwan/userspace/api"
	"github.com/xwan-dev/xwan/userspace/pki"
)

// TunnelPort is the lab's DTLS port.
const TunnelPort = 4754

// Options configure a lab.
type Options struct {
	Prefix    string        // namespace and pin names start with it (default "xl")
	Dir       string        // configs, certificates and logs (default: a temporary directory)
	Xwand     string        // the xwand binary (default: next to this executable, then $PATH)
	Keepalive time.Duration // tunnel keepalive (default 1s: a killed peer is noticed in 3s)
	// Links are the two WAN links' precedence and bandwidth, for every
	// site unless SiteLinks names it (default: wan1 active, wan2 passive,
	// 100 Mbit/s each).
	Links     [2]LinkSpec
	SiteLinks map[string][2]LinkSpec
	Sites     []string // default a, b
	NoDaemons bool     // build the topology and configs but start no xwand (StartAll does)

	// Impairable runs every WAN link through an impairment bridge in a
	// namespace of its own (impair.go: Impair, Clear, ImpairCounters).
	Impairable bool
}

// LinkSpec is how a lab site's WAN link is configured.
type LinkSpec struct {
	Precedence int    // 1 active, 2 passive, 3 last resort
	Bandwidth  string // e.g. "100Mbit"
}

// Link is one WAN link of a site.
type Link struct {
	Name    string
	Addr    netip.Addr // the gateway's address
	Gateway netip.Addr // the router's address on that link
}

// Site is one site of the lab.
type Site struct {
	Name      string
	Index     int
	GW, Host  string // namespace names
	LAN       netip.Prefix
	GWAddr    netip.Addr // on lan0
	HostAddr  netip.Addr
	WAN       []Link
	Config    string
	Socket    string
	PinRoot   string
	EventsLog string
	cmd       *exec.Cmd
	done      chan error
}

// Lab is a running lab.
type Lab struct {
	Opts   Options
	Router string
	Sites  []*Site
	CADir  string

	bridges bridgeSet // impairment bridges (impair.go), with Opts.Impairable
}

func (o *Options) defaults() error {
	if o.Prefix == "" {
		o.Prefix = "xl"
	}
	if len(o.Prefix) > 8 {
		return fmt.Errorf("prefix %q: at most 8 characters", o.Prefix)
	}
	if o.Keepalive == 0 {
		o.Keepalive = time.Second
	}
	if len(o.Sites) == 0 {
		o.Sites = []string{"a", "b"}
	}
	if o.Links == ([2]LinkSpec{}) {
		o.Links = [2]LinkSpec{{Precedence: 1, Bandwidth: "100Mbit"}, {Precedence: 2, Bandwidth: "100Mbit"}}
	}
	if o.Dir == "" {
		d, err := os.MkdirTemp("", "xwan-lab-")
		if err != nil {
			return err
		}
		o.Dir = d
	}
	if o.Xwand == "" {
		if self, err := os.Executable(); err == nil {
			cand := filepath.Join(filepath.Dir(self), "xwand")
			if _, err := os.Stat(cand); err == nil {
				o.Xwand = cand
			}
		}
		if o.Xwand == "" {
			p, err := exec.LookPath("xwand")
			if err != nil {
				return errors.New("no xwand binary: build it (make build) or pass its path")
			}
			o.Xwand = p
		}
	}
	return nil
}

// Down removes everything a lab with this prefix may have left: its
// namespaces (and the processes in them) and its pin roots.
func Down(prefix string) {
	for _, ns := range namespaces(prefix + "-") {
		deleteNamespace(ns)
	}
	matches, _ := filepath.Glob(filepath.Join("/sys/fs/bpf", prefix+"-*"))
	for _, m := range matches {
		_ = os.RemoveAll(m)
	}
}

// Up builds the lab and starts xwand in every site, after removing what a
// crashed earlier run with the same prefix left behind.
func Up(opts Options) (_ *Lab, err error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	Down(opts.Prefix)
	l := &Lab{Opts: opts, Router: opts.Prefix + "-inet", CADir: filepath.Join(opts.Dir, "ca")}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	if _, err := sh("ip", "netns", "add", l.Router); err != nil {
		return nil, err
	}
	for _, c := range [][]string{{"ip", "link", "set", "lo", "up"}, {"sysctl", "-qw", "net.ipv4.ip_forward=1"}} {
		if _, err := in(l.Router, c...); err != nil {
			return nil, err
		}
	}
	if err := pki.InitCA(l.CADir); err != nil {
		return nil, err
	}
	for i, name := range opts.Sites {
		s, err := l.addSite(i+1, name)
		if err != nil {
			return nil, err
		}
		l.Sites = append(l.Sites, s)
	}
	for _, s := range l.Sites {
		if err := l.writeConfig(s); err != nil {
			return nil, err
		}
	}
	if !opts.NoDaemons {
		if err := l.StartAll(); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// StartAll starts xwand in every site.
func (l *Lab) StartAll() error {
	for _, s := range l.Sites {
		if err := l.Start(s); err != nil {
			return err
		}
	}
	return nil
}

// In runs a command inside one of the lab's namespaces.
func (l *Lab) In(ns string, argv ...string) (string, error) { return in(ns, argv...) }

// Command returns a command that runs inside one of the lab's namespaces.
func (l *Lab) Command(ctx context.Context, ns string, argv ...string) *exec.Cmd {
	return nsCommand(ctx, ns, argv...)
}

func (l *Lab) addSite(i int, name string) (*Site, error) {
	p := l.Opts.Prefix
	s := &Site{
		Name: name, Index: i, GW: fmt.Sprintf("%s-%s", p, name), Host: fmt.Sprintf("%s-%s-h", p, name),
		LAN:       netip.MustParsePrefix(fmt.Sprintf("198.18.%d.0/24", 10*i)),
		GWAddr:    netip.MustParseAddr(fmt.Sprintf("198.18.%d.1", 10*i)),
		HostAddr:  netip.MustParseAddr(fmt.Sprintf("198.18.%d.10", 10*i)),
		Config:    filepath.Join(l.Opts.Dir, name+".yaml"),
		Socket:    filepath.Join(l.Opts.Dir, name+".sock"),
		PinRoot:   filepath.Join("/sys/fs/bpf", fmt.Sprintf("%s-%s", p, name)),
		EventsLog: filepath.Join(l.Opts.Dir, name+".events.log"),
	}
	for _, ns := range []string{s.GW, s.Host} {
		if _, err := sh("ip", "netns", "add", ns); err != nil {
			return nil, err
		}
		if _, err := in(ns, "ip", "link", "set", "lo", "up"); err != nil {
			return nil, err
		}
	}
	if err := veth(s.GW, "lan0", s.GWAddr.String()+"/24", s.Host, "eth0", s.HostAddr.String()+"/24"); err != nil {
		return nil, err
	}
	if _, err := in(s.Host, "ip", "route", "add", "default", "via", s.GWAddr.String()); err != nil {
		return nil, err
	}
	// A veth leaves TCP/UDP checksums for the receiver to finish, and XDP
	// hands frames to AF_XDP before anyone does: make the host compute
	// them, as a physical NIC does before the wire.
	if _, err := in(s.Host, "ethtool", "-K", "eth0", "tx", "off"); err != nil {
		return nil, err
	}
	for k := 1; k <= 2; k++ {
		net := 100 + 2*(i-1) + k // a: 101, 102; b: 103, 104; ...
		link := Link{
			Name:    fmt.Sprintf("wan%d", k),
			Addr:    netip.MustParseAddr(fmt.Sprintf("198.18.%d.2", net)),
			Gateway: netip.MustParseAddr(fmt.Sprintf("198.18.%d.1", net)),
		}
		if l.Opts.Impairable { // impair.go: the same link through a bridge
			if err := l.addBridgedLink(s, link, fmt.Sprintf("%s-%s", name, link.Name)); err != nil {
				return nil, err
			}
		} else if err := veth(s.GW, link.Name, link.Addr.String()+"/24", l.Router, fmt.Sprintf("%s-%s", name, link.Name), link.Gateway.String()+"/24"); err != nil {
			return nil, err
		}
		// A default route per link; SO_BINDTODEVICE makes each tunnel
		// socket use its own link's.
		if _, err := in(s.GW, "ip", "route", "add", "default", "via", link.Gateway.String(), "dev", link.Name, "metric", fmt.Sprint(100*k)); err != nil {
			return nil, err
		}
		s.WAN = append(s.WAN, link)
	}
	if err := pki.IssueSite(l.CADir, name, l.Opts.Dir); err != nil {
		return nil, err
	}
	return s, nil
}

func (l *Lab) writeConfig(s *Site) error {
	cert, key := pki.SiteFiles(l.Opts.Dir, s.Name)
	ca, _ := pki.CAFiles(l.CADir)
	var b strings.Builder
	fmt.Fprintf(&b, "# written by xwan-lab\nsite: %s\nlan:\n  interfaces: [lan0]\n  prefixes: [%s]\nwan:\n", s.Name, s.LAN)
	for k, link := range s.WAN {
		spec := l.Opts.Links[k]
		if per, ok := l.Opts.SiteLinks[s.Name]; ok {
			spec = per[k]
		}
		fmt.Fprintf(&b, "  - name: %s\n    interface: %s\n    precedence: %d\n    bandwidth: {up: %s, down: %s}\n",
			link.Name, link.Name, spec.Precedence, spec.Bandwidth, spec.Bandwidth)
	}
	b.WriteString("peers:\n")
	for _, p := range l.Sites {
		if p == s {
			continue
		}
		fmt.Fprintf(&b, "  - site: %s\n    prefixes: [%s]\n    links:\n", p.Name, p.LAN)
		for _, link := range p.WAN {
			fmt.Fprintf(&b, "      - {name: %s, endpoint: \"%s:%d\"}\n", link.Name, link.Addr, TunnelPort)
		}
	}
	fmt.Fprintf(&b, "tunnel: {port: %d, keepalive: %s}\n", TunnelPort, l.Opts.Keepalive)
	b.WriteString("rules:\n  - {name: site-to-site, transport: off-cloud, secondary: none}\n")
	b.WriteString("default: {transport: off-cloud, secondary: none}\n")
	fmt.Fprintf(&b, "certificates: {ca: %s, cert: %s, key: %s}\n", ca, cert, key)
	fmt.Fprintf(&b, "api: {socket: %s}\nbpf: {pin_root: %s}\n", s.Socket, s.PinRoot)
	return os.WriteFile(s.Config, []byte(b.String()), 0o600)
}

// Start runs xwand for a site and waits until its API answers.
func (l *Lab) Start(s *Site) error {
	logf, err := os.OpenFile(filepath.Join(l.Opts.Dir, s.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	evf, err := os.OpenFile(s.EventsLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		logf.Close()
		return err
	}
	cmd := nsCommand(context.Background(), s.GW, l.Opts.Xwand, "-config", s.Config)
	cmd.Stdout, cmd.Stderr = evf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		evf.Close()
		return err
	}
	s.cmd, s.done = cmd, make(chan error, 1)
	go func() {
		s.done <- cmd.Wait()
		logf.Close()
		evf.Close()
	}()
	c := api.NewClient(s.Socket)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-s.done:
			s.done <- err
			log, _ := os.ReadFile(filepath.Join(l.Opts.Dir, s.Name+".log"))
			return fmt.Errorf("xwand for site %s exited: %v: %s", s.Name, err, strings.TrimSpace(string(log)))
		default:
		}
		if _, err := c.Status(); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("xwand for site %s: API not answering after 30s", s.Name)
}

// Stop ends a site's xwand with a signal (SIGTERM: a clean stop with
// close_notify; SIGKILL: a crash) and waits for it.
func (s *Site) Stop(sig os.Signal) error {
	if s.cmd == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
	return nil
}

// Client returns an API client for the site's xwand.
func (s *Site) Client() *api.Client { return api.NewClient(s.Socket) }

// Site returns the site with that name.
func (l *Lab) Site(name string) *Site {
	for _, s := range l.Sites {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// WaitPaths waits until every site has at least n paths up.
func (l *Lab) WaitPaths(n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		var last string
		for _, s := range l.Sites {
			st, err := s.Client().Status()
			if err != nil || st.PathsUp < n {
				ok = false
				last = fmt.Sprintf("site %s: %d paths up (%v)", s.Name, st.PathsUp, err)
				break
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("paths not up after %s: %s", timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Close stops every xwand and removes the lab's namespaces, pins and, if
// it made it, the directory.
func (l *Lab) Close() {
	for _, s := range l.Sites {
		_ = s.Stop(os.Interrupt)
	}
	l.stopBridges() // impair.go: before Down, the bridge sockets hold their namespaces
	Down(l.Opts.Prefix)
}
