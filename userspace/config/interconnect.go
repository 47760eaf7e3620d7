package config

import (
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/xwan-dev/xwan/userspace/events"
)

// This file is the cloud-interconnect part of the schema: the bgp:,
// lan_monitoring: and notifications: sections (docs/bgp.md). The types are
// the configuration's own, with snake_case keys in the file; the daemon
// maps them onto userspace/bgp, userspace/monitor and userspace/notify,
// whose rules these checks mirror so that `xwand -check` catches
// everything those libraries would refuse at start.

// BGP is the bgp: section: the gateway's BGP neighbours, e.g. the two
// routers of an Azure ExpressRoute private peering.
type BGP struct {
	ASN             uint32
	RouterID        netip.Addr   // default: the first IPv4 local_address of the neighbours
	ListenPort      int          // default 179; -1: do not listen (dial out only)
	ListenAddresses []netip.Addr // empty: every address
	// AdvertiseMesh adds the mesh's remote prefixes (peers[].prefixes) to
	// this site's LAN prefixes in what advertise_all neighbours are sent.
	// Default true.
	AdvertiseMesh bool
	Kernel        BGPKernel
	Neighbors     []BGPNeighbor
}

// BGPKernel says where learned best routes go in the kernel.
type BGPKernel struct {
	Install  bool // default true
	Table    int  // default 254 (main)
	Priority int  // route metric, default 20
}

// BGPNeighbor is one BGP session.
type BGPNeighbor struct {
	Name         string
	PeerAddress  netip.Addr
	PeerASN      uint32
	LocalASN     uint32     // default: bgp.asn
	LocalAddress netip.Addr // source of the session; optional
	Password     string     // TCP MD5 key; empty: none

	HoldTime     time.Duration // default 90s
	Keepalive    time.Duration // default hold_time/3
	ConnectRetry time.Duration // default 5s

	Metric  int // 1-999, lower is preferred; default 100
	Prepend int // AS-path prepends when this neighbour is a backup: 0 (none) to 10, default 2

	AdvertiseDefault bool // default false
	AdvertiseAll     bool // default true: this site's LAN prefixes (and the mesh's, see BGP.AdvertiseMesh)
	AcceptDynamic    bool // default true

	MaxReceived        uint32 // 0: no limit
	PrefixLimitRestart PrefixLimitRestart
	MaxAdvertised      int // 0: no cap
}

// PrefixLimitRestart is what happens after max_received tore a session
// down: re-enable After a delay (default 5m), or wait for an operator.
type PrefixLimitRestart struct {
	Manual bool
	After  time.Duration
}

// String is how the file writes it: "manual" or a duration.
func (p PrefixLimitRestart) String() string {
	if p.Manual {
		return "manual"
	}
	return p.After.String()
}

// LANMonitoring is the lan_monitoring: section.
type LANMonitoring struct {
	Targets []MonitorTarget
}

// MonitorTarget is one host probed with ICMP echo.
type MonitorTarget struct {
	Name     string
	Address  netip.Addr
	Source   netip.Addr    // optional; zero: the kernel chooses
	Interval time.Duration // default 2s
	Timeout  time.Duration // default the interval, at most 1s
	// Thresholds.
	DownAfter   int // consecutive failures that take the host down; default 3
	UpAfter     int // consecutive replies that bring it back; default 2
	LossPercent int // loss over the window that takes it down; default 50
	Window      int // probes the loss is computed over; default 10
}

// Notifications is the notifications: section.
type Notifications struct {
	Channels []NotifyChannel
}

// Frequency of a notification channel.
type Frequency string

const (
	Immediate Frequency = "immediate"
	Hourly    Frequency = "hourly"
	Daily     Frequency = "daily"
	Weekly    Frequency = "weekly"
)

// NotifyChannel is one destination: exactly one of Webhook and Email.
type NotifyChannel struct {
	Name      string
	Frequency Frequency     // default immediate
	Events    []events.Type // default DefaultNotifyEvents
	Webhook   *Webhook
	Email     *Email
}

// Webhook is an HTTP POST of JSON.
type Webhook struct {
	URL     string
	Headers map[string]string
}

// Email is SMTP, with STARTTLS when the server offers it.
type Email struct {
	Server     string // host:port
	From       string
	To         []string
	Username   string
	Password   string
	RequireTLS bool
}

// NotifyEvents are the event kinds a channel may ask for.
var NotifyEvents = []events.Type{
	events.BGPSessionUp, events.BGPSessionDown, events.BGPRoutesAdded, events.BGPRoutesWithdrawn,
	events.BGPPrefixLimit, events.LANMonitorUp, events.LANMonitorDown,
}

// DefaultNotifyEvents are the state changes a channel gets when it lists
// no events: everything but the route batches.
var DefaultNotifyEvents = []events.Type{
	events.BGPSessionUp, events.BGPSessionDown, events.BGPPrefixLimit, events.LANMonitorUp, events.LANMonitorDown,
}

// Defaults of the interconnect sections.
const (
	DefaultBGPPort            = 179
	DefaultBGPHoldTime        = 90 * time.Second
	DefaultBGPConnectRetry    = 5 * time.Second
	DefaultBGPMetric          = 100
	DefaultBGPPrepend         = 2
	DefaultPrefixLimitRestart = 5 * time.Minute
	DefaultKernelTable        = 254
	DefaultKernelPriority     = 20
	DefaultMonitorInterval    = 2 * time.Second
	DefaultMonitorDownAfter   = 3
	DefaultMonitorUpAfter     = 2
	DefaultMonitorLossPercent = 50
	DefaultMonitorWindow      = 10
)

// interconnectName: names label events and metrics (as in userspace/bgp
// and userspace/monitor).
var interconnectName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

const nameRule = "use letters, digits, '.', '_' and '-' (at most 64, starting with a letter or digit)"

// --- decoding ------------------------------------------------------------

func (d *decoder) objName(n *yaml.Node, field string) string {
	s := d.str(n, field)
	if !d.bad[field] && !interconnectName.MatchString(s) {
		d.fail(n, field, "%q: %s", s, nameRule)
	}
	return s
}

// ipAddr reads a unicast IP address.
func (d *decoder) ipAddr(n *yaml.Node, field string) netip.Addr {
	s, ok := d.scalar(n, field, "an IP address")
	if !ok {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !unicast(a) {
		d.fail(n, field, "%q is not a unicast IP address", s)
		return netip.Addr{}
	}
	return a
}

// asn reads an AS number; reserved ones are refused.
func (d *decoder) asn(n *yaml.Node, field string) uint32 {
	v, ok := d.integer(n, field, 1, 4294967294, "an AS number 1-4294967294")
	if !ok {
		return 0
	}
	switch v {
	case 23456:
		d.fail(n, field, "23456 is AS_TRANS, not a real AS")
		return 0
	case 65535:
		d.fail(n, field, "65535 is reserved")
		return 0
	}
	return uint32(v)
}

// wholeSeconds reads a duration of whole seconds within [lo, hi].
func (d *decoder) wholeSeconds(n *yaml.Node, field string, lo, hi time.Duration) time.Duration {
	want := fmt.Sprintf("whole seconds from %s to %s", lo, hi)
	return d.duration(n, field, want, func(v time.Duration) bool { return v%time.Second == 0 && v >= lo && v <= hi })
}

func (d *decoder) bgp(n *yaml.Node) *BGP {
	b := &BGP{}
	f := d.fields(n, "bgp", "asn", "router_id", "listen_port", "listen_addresses", "advertise_mesh", "kernel", "neighbors")
	if d.bad["bgp"] {
		return b
	}
	d.require(f, "bgp", "asn", "neighbors")
	if n := f["asn"]; n != nil {
		b.ASN = d.asn(n, "bgp.asn")
	}
	if n := f["router_id"]; n != nil {
		b.RouterID = d.ipAddr(n, "bgp.router_id")
		if b.RouterID.IsValid() && !b.RouterID.Is4() {
			d.fail(n, "bgp.router_id", "%s: the BGP identifier must be an IPv4 address", b.RouterID)
		}
	}
	if n := f["listen_port"]; n != nil {
		p, ok := d.integer(n, "bgp.listen_port", -1, 65535, "-1 (do not listen) or a TCP port 1-65535")
		if ok && p == 0 {
			d.fail(n, "bgp.listen_port", "must be -1 (do not listen) or a TCP port 1-65535, got 0")
		}
		b.ListenPort = int(p)
	}
	if n := f["listen_addresses"]; n != nil {
		for i, it := range d.list(n, "bgp.listen_addresses") {
			b.ListenAddresses = append(b.ListenAddresses, d.ipAddr(it, item("bgp.listen_addresses", i)))
		}
	}
	if n := f["advertise_mesh"]; n != nil {
		b.AdvertiseMesh = d.boolean(n, "bgp.advertise_mesh")
	}
	if n := f["kernel"]; n != nil {
		kf := d.fields(n, "bgp.kernel", "install", "table", "priority")
		if n := kf["install"]; n != nil {
			b.Kernel.Install = d.boolean(n, "bgp.kernel.install")
		}
		if n := kf["table"]; n != nil {
			t, ok := d.integer(n, "bgp.kernel.table", 1, 0xfffffffe, "a routing table id 1-4294967294 (254 is main)")
			if ok && t == 255 {
				d.fail(n, "bgp.kernel.table", "255 is the kernel's local table; use 254 (main) or a table of your own")
			}
			b.Kernel.Table = int(t)
		}
		if n := kf["priority"]; n != nil {
			p, _ := d.integer(n, "bgp.kernel.priority", 1, 0xffffffff, "a route metric 1-4294967295")
			b.Kernel.Priority = int(p)
		}
	}
	if n := f["neighbors"]; n != nil {
		items := d.list(n, "bgp.neighbors")
		for i, it := range items {
			b.Neighbors = append(b.Neighbors, d.bgpNeighbor(it, item("bgp.neighbors", i)))
		}
		if len(items) == 0 && !d.bad["bgp.neighbors"] {
			d.fail(n, "bgp.neighbors", "at least one neighbor is required (or leave bgp out)")
		}
	}
	return b
}

func (d *decoder) bgpNeighbor(n *yaml.Node, path string) BGPNeighbor {
	var nb BGPNeighbor
	f := d.fields(n, path, "name", "peer_address", "peer_asn", "local_asn", "local_address", "password",
		"hold_time", "keepalive", "connect_retry", "metric", "prepend", "advertise_default", "advertise_all",
		"accept_dynamic", "max_received", "prefix_limit_restart", "max_advertised")
	if d.bad[path] {
		return nb
	}
	d.require(f, path, "name", "peer_address", "peer_asn")
	if n := f["name"]; n != nil {
		nb.Name = d.objName(n, child(path, "name"))
	}
	if n := f["peer_address"]; n != nil {
		nb.PeerAddress = d.ipAddr(n, child(path, "peer_address"))
	}
	if n := f["peer_asn"]; n != nil {
		nb.PeerASN = d.asn(n, child(path, "peer_asn"))
	}
	if n := f["local_asn"]; n != nil {
		nb.LocalASN = d.asn(n, child(path, "local_asn"))
	}
	if n := f["local_address"]; n != nil {
		nb.LocalAddress = d.ipAddr(n, child(path, "local_address"))
	}
	if n := f["password"]; n != nil {
		field := child(path, "password")
		nb.Password = d.str(n, field)
		if len(nb.Password) > 80 && !d.bad[field] {
			d.fail(n, field, "%d bytes; TCP MD5 keys are at most 80", len(nb.Password))
		}
	}
	if n := f["hold_time"]; n != nil {
		field := child(path, "hold_time")
		if s, ok := d.scalar(n, field, "a duration such as 90s"); ok {
			if v, err := time.ParseDuration(s); err == nil && v == 0 || s == "0" {
				d.fail(n, field, "0 (no keepalives) is valid BGP, but the embedded BGP speaker cannot run without a hold timer; use 3s or more")
			} else {
				nb.HoldTime = d.wholeSeconds(n, field, 3*time.Second, 65535*time.Second)
			}
		}
	}
	if n := f["keepalive"]; n != nil {
		nb.Keepalive = d.wholeSeconds(n, child(path, "keepalive"), time.Second, 21845*time.Second)
	}
	if n := f["connect_retry"]; n != nil {
		nb.ConnectRetry = d.wholeSeconds(n, child(path, "connect_retry"), time.Second, time.Hour)
	}
	if n := f["metric"]; n != nil {
		m, _ := d.integer(n, child(path, "metric"), 1, 999, "1-999 (lower is preferred)")
		nb.Metric = int(m)
	}
	if n := f["prepend"]; n != nil {
		p, _ := d.integer(n, child(path, "prepend"), 0, 10, "0 (none) to 10")
		nb.Prepend = int(p)
	}
	if n := f["advertise_default"]; n != nil {
		nb.AdvertiseDefault = d.boolean(n, child(path, "advertise_default"))
	}
	if n := f["advertise_all"]; n != nil {
		nb.AdvertiseAll = d.boolean(n, child(path, "advertise_all"))
	}
	if n := f["accept_dynamic"]; n != nil {
		nb.AcceptDynamic = d.boolean(n, child(path, "accept_dynamic"))
	}
	if n := f["max_received"]; n != nil {
		v, _ := d.integer(n, child(path, "max_received"), 0, 0xffffffff, "a prefix count 0-4294967295 (0: no limit)")
		nb.MaxReceived = uint32(v)
	}
	if n := f["max_advertised"]; n != nil {
		v, _ := d.integer(n, child(path, "max_advertised"), 0, 1<<31-1, "a prefix count 0-2147483647 (0: no cap)")
		nb.MaxAdvertised = int(v)
	}
	if n := f["prefix_limit_restart"]; n != nil {
		field := child(path, "prefix_limit_restart")
		const want = `manual or a delay of at least 1s such as 5m`
		if s, ok := d.scalar(n, field, want); ok {
			if strings.EqualFold(s, "manual") {
				nb.PrefixLimitRestart.Manual = true
			} else if v, err := time.ParseDuration(s); err != nil || v < time.Second {
				d.fail(n, field, "must be %s, got %q", want, s)
			} else {
				nb.PrefixLimitRestart.After = v
			}
		}
	}
	return nb
}

func (d *decoder) lanMonitoring(n *yaml.Node, lm *LANMonitoring) {
	d.sectionList(n, "lan_monitoring", "targets", "target", func(it *yaml.Node, path string) {
		lm.Targets = append(lm.Targets, d.monitorTarget(it, path))
	})
}

// sectionList reads a section that is one required, non-empty list
// (lan_monitoring.targets, notifications.channels), calling each for every
// item with its field path.
func (d *decoder) sectionList(n *yaml.Node, section, key, what string, each func(it *yaml.Node, path string)) {
	f := d.fields(n, section, key)
	if d.bad[section] {
		return
	}
	d.require(f, section, key)
	n = f[key]
	if n == nil {
		return
	}
	field := section + "." + key
	items := d.list(n, field)
	for i, it := range items {
		each(it, item(field, i))
	}
	if len(items) == 0 && !d.bad[field] {
		d.fail(n, field, "at least one %s is required (or leave %s out)", what, section)
	}
}

func (d *decoder) monitorTarget(n *yaml.Node, path string) MonitorTarget {
	var t MonitorTarget
	f := d.fields(n, path, "name", "address", "source", "interval", "timeout", "thresholds")
	if d.bad[path] {
		return t
	}
	d.require(f, path, "name", "address")
	if n := f["name"]; n != nil {
		t.Name = d.objName(n, child(path, "name"))
	}
	if n := f["address"]; n != nil {
		t.Address = d.ipAddr(n, child(path, "address"))
	}
	if n := f["source"]; n != nil {
		t.Source = d.ipAddr(n, child(path, "source"))
	}
	if n := f["interval"]; n != nil {
		t.Interval = d.duration(n, child(path, "interval"), "between 100ms and 1h",
			func(v time.Duration) bool { return v >= 100*time.Millisecond && v <= time.Hour })
	}
	if n := f["timeout"]; n != nil {
		t.Timeout = d.duration(n, child(path, "timeout"), "more than 0s and at most 1h",
			func(v time.Duration) bool { return v > 0 && v <= time.Hour })
	}
	if n := f["thresholds"]; n != nil {
		tp := child(path, "thresholds")
		tf := d.fields(n, tp, "down_after", "up_after", "loss_percent", "window")
		read := func(key string, lo, hi int64, want string) int {
			if n := tf[key]; n != nil {
				v, _ := d.integer(n, child(tp, key), lo, hi, want)
				return int(v)
			}
			return 0
		}
		t.DownAfter = read("down_after", 1, 1000, "a count of consecutive failed probes 1-1000")
		t.UpAfter = read("up_after", 1, 1000, "a count of consecutive answered probes 1-1000")
		t.LossPercent = read("loss_percent", 1, 100, "a percentage 1-100")
		t.Window = read("window", 1, 1000, "a number of probes 1-1000")
	}
	return t
}

func (d *decoder) notifications(n *yaml.Node, nt *Notifications) {
	d.sectionList(n, "notifications", "channels", "channel", func(it *yaml.Node, path string) {
		nt.Channels = append(nt.Channels, d.notifyChannel(it, path))
	})
}

var frequencies = []Frequency{Immediate, Hourly, Daily, Weekly}

func eventNames() string {
	names := []string{"all"}
	for _, e := range NotifyEvents {
		names = append(names, string(e))
	}
	return strings.Join(names, ", ")
}

func (d *decoder) notifyChannel(n *yaml.Node, path string) NotifyChannel {
	var c NotifyChannel
	f := d.fields(n, path, "name", "frequency", "events", "webhook", "email")
	if d.bad[path] {
		return c
	}
	d.require(f, path, "name")
	if n := f["name"]; n != nil {
		c.Name = d.objName(n, child(path, "name"))
	}
	if n := f["frequency"]; n != nil {
		field := child(path, "frequency")
		if s, ok := d.scalar(n, field, "a frequency"); ok {
			c.Frequency = Frequency(strings.ToLower(s))
			if !slices.Contains(frequencies, c.Frequency) {
				d.fail(n, field, "must be immediate, hourly, daily or weekly, got %q", s)
			}
		}
	}
	if n := f["events"]; n != nil {
		ep := child(path, "events")
		items := d.list(n, ep)
		for i, it := range items {
			field := item(ep, i)
			s, ok := d.scalar(it, field, "an event kind")
			switch {
			case !ok:
			case s == "all":
				c.Events = append(c.Events, NotifyEvents...)
			case slices.Contains(NotifyEvents, events.Type(s)):
				c.Events = append(c.Events, events.Type(s))
			default:
				d.fail(it, field, "unknown event kind %q (want %s)", s, eventNames())
			}
		}
		if len(items) == 0 && !d.bad[ep] {
			d.fail(n, ep, "at least one event kind is required (leave events out for the default: every state change)")
		}
		slices.Sort(c.Events)
		c.Events = slices.Compact(c.Events)
	}
	switch w, e := f["webhook"], f["email"]; {
	case w == nil && e == nil:
		d.errorAt(d.at(path), path, "needs a webhook or an email")
	case w != nil && e != nil:
		d.errorAt(d.at(child(path, "email")), path, "has both a webhook and an email: make one channel for each")
	case w != nil:
		c.Webhook = d.webhook(w, child(path, "webhook"))
	default:
		c.Email = d.email(e, child(path, "email"))
	}
	return c
}

func (d *decoder) webhook(n *yaml.Node, path string) *Webhook {
	w := &Webhook{}
	f := d.fields(n, path, "url", "headers")
	if d.bad[path] {
		return w
	}
	d.require(f, path, "url")
	if n := f["url"]; n != nil {
		field := child(path, "url")
		w.URL = d.str(n, field)
		if u, err := url.Parse(w.URL); !d.bad[field] && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
			d.fail(n, field, "must be an http:// or https:// URL, got %q", w.URL)
		}
	}
	if n := f["headers"]; n != nil {
		hp := child(path, "headers")
		n = d.resolve(n)
		if n == nil {
			return w
		}
		if n.Kind != yaml.MappingNode {
			d.fail(n, hp, "must be a mapping of header names to values, got %s", kindName(n))
			return w
		}
		w.Headers = map[string]string{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], d.resolve(n.Content[i+1])
			if v == nil {
				continue
			}
			field := child(hp, k.Value)
			name, ok := d.scalar(k, hp, "a header name")
			if !ok {
				continue
			}
			if !validHeaderName(name) {
				d.fail(k, field, "%q is not an HTTP header name", name)
				continue
			}
			val := d.str(v, field)
			if strings.ContainsAny(val, "\r\n") {
				d.fail(v, field, "header values must be one line")
			}
			w.Headers[name] = val
		}
	}
	return w
}

var headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

func validHeaderName(s string) bool { return headerName.MatchString(s) }

func (d *decoder) email(n *yaml.Node, path string) *Email {
	e := &Email{}
	f := d.fields(n, path, "server", "from", "to", "username", "password", "require_tls")
	if d.bad[path] {
		return e
	}
	d.require(f, path, "server", "from", "to")
	if n := f["server"]; n != nil {
		field := child(path, "server")
		e.Server = d.str(n, field)
		if host, port, err := net.SplitHostPort(e.Server); !d.bad[field] && (err != nil || host == "" || !validPort(port)) {
			d.fail(n, field, "must be host:port such as smtp.example.com:587, got %q", e.Server)
		}
	}
	if n := f["from"]; n != nil {
		field := child(path, "from")
		e.From = d.str(n, field)
		if _, err := mail.ParseAddress(e.From); err != nil && !d.bad[field] {
			d.fail(n, field, "%q is not an e-mail address", e.From)
		}
	}
	if n := f["to"]; n != nil {
		tp := child(path, "to")
		items := d.list(n, tp)
		for i, it := range items {
			field := item(tp, i)
			s := d.str(it, field)
			if _, err := mail.ParseAddress(s); err != nil && !d.bad[field] {
				d.fail(it, field, "%q is not an e-mail address", s)
			}
			e.To = append(e.To, s)
		}
		if len(items) == 0 && !d.bad[tp] {
			d.fail(n, tp, "at least one recipient is required")
		}
	}
	if n := f["username"]; n != nil {
		e.Username = d.str(n, child(path, "username"))
	}
	if n := f["password"]; n != nil {
		e.Password = d.str(n, child(path, "password"))
	}
	if n := f["require_tls"]; n != nil {
		e.RequireTLS = d.boolean(n, child(path, "require_tls"))
	}
	if (e.Username == "") != (e.Password == "") && !d.bad[child(path, "username")] && !d.bad[child(path, "password")] {
		missing, present := "password", "username"
		if e.Username == "" {
			missing, present = "username", "password"
		}
		d.errorAt(d.at(child(path, present)), child(path, missing), "required with %s (SMTP authentication needs both)", present)
	}
	return e
}

// --- relations -----------------------------------------------------------

func (d *decoder) validateInterconnect(c *Config) {
	if c.BGP != nil && !d.bad["bgp"] {
		d.validateBGP(c.BGP)
	}
	names := seen{}
	for i, t := range c.LANMonitoring.Targets {
		p := item("lan_monitoring.targets", i)
		if f := child(p, "name"); t.Name != "" && !d.bad[f] {
			if first, ok := names.dup(t.Name, f); ok {
				d.errorAt(d.at(f), f, "duplicate target name %q (first at line %d)", t.Name, d.at(first).line)
			}
		}
		if f := child(p, "source"); t.Source.IsValid() && t.Address.IsValid() && t.Source.Is4() != t.Address.Is4() {
			d.errorAt(d.at(f), f, "%s is not of the address family of address %s", t.Source, t.Address)
		}
		if f := child(p, "timeout"); t.Timeout > 0 && t.Timeout > monitorInterval(t) {
			d.errorAt(d.at(f), f, "%s is longer than the interval (%s)", t.Timeout, monitorInterval(t))
		}
	}
	names = seen{}
	for i, ch := range c.Notifications.Channels {
		f := child(item("notifications.channels", i), "name")
		if ch.Name != "" && !d.bad[f] {
			if first, ok := names.dup(ch.Name, f); ok {
				d.errorAt(d.at(f), f, "duplicate channel name %q (first at line %d)", ch.Name, d.at(first).line)
			}
		}
	}
}

func monitorInterval(t MonitorTarget) time.Duration {
	if t.Interval == 0 {
		return DefaultMonitorInterval
	}
	return t.Interval
}

func (d *decoder) validateBGP(b *BGP) {
	names, peers := seen{}, seen{}
	for i, nb := range b.Neighbors {
		p := item("bgp.neighbors", i)
		if d.bad[p] {
			continue
		}
		if f := child(p, "name"); nb.Name != "" && !d.bad[f] {
			if first, ok := names.dup(nb.Name, f); ok {
				d.errorAt(d.at(f), f, "duplicate neighbor name %q (first at line %d)", nb.Name, d.at(first).line)
			}
		}
		if f := child(p, "peer_address"); nb.PeerAddress.IsValid() {
			if first, ok := peers.dup(nb.PeerAddress.String(), f); ok {
				d.errorAt(d.at(f), f, "%s is already the peer of %s (line %d)", nb.PeerAddress, strings.TrimSuffix(first, ".peer_address"), d.at(first).line)
			}
		}
		local, localField := b.ASN, "bgp.asn"
		if nb.LocalASN != 0 {
			local, localField = nb.LocalASN, child(p, "local_asn")
		}
		if f := child(p, "peer_asn"); nb.PeerASN != 0 && nb.PeerASN == local {
			d.errorAt(d.at(f), f, "%d is this gateway's AS (%s): only eBGP neighbors are supported", nb.PeerASN, localField)
		}
		if f := child(p, "local_address"); nb.LocalAddress.IsValid() && nb.PeerAddress.IsValid() && nb.LocalAddress.Is4() != nb.PeerAddress.Is4() {
			d.errorAt(d.at(f), f, "%s is not of the address family of peer_address %s", nb.LocalAddress, nb.PeerAddress)
		}
		hold := nb.HoldTime
		if hold == 0 {
			hold = DefaultBGPHoldTime
		}
		if f := child(p, "keepalive"); nb.Keepalive > hold/3 && !d.bad[child(p, "hold_time")] {
			d.errorAt(d.at(f), f, "%s is more than a third of the hold time (%s)", nb.Keepalive, hold)
		}
	}
	if f := "bgp.router_id"; !b.RouterID.IsValid() && !d.bad[f] && len(b.Neighbors) > 0 && !defaultRouterID(b).IsValid() {
		d.errorAt(d.at(f), f, "required when no neighbor has an IPv4 local_address")
	}
}

func defaultRouterID(b *BGP) netip.Addr {
	for _, n := range b.Neighbors {
		if n.LocalAddress.Is4() {
			return n.LocalAddress
		}
	}
	return netip.Addr{}
}

// --- defaults ------------------------------------------------------------

func (d *decoder) interconnectDefaults(c *Config) {
	if b := c.BGP; b != nil {
		if !b.RouterID.IsValid() {
			b.RouterID = defaultRouterID(b)
		}
		if b.ListenPort == 0 {
			b.ListenPort = DefaultBGPPort
		}
		if !d.has("bgp.advertise_mesh") {
			b.AdvertiseMesh = true
		}
		if !d.has("bgp.kernel.install") {
			b.Kernel.Install = true
		}
		if b.Kernel.Table == 0 {
			b.Kernel.Table = DefaultKernelTable
		}
		if b.Kernel.Priority == 0 {
			b.Kernel.Priority = DefaultKernelPriority
		}
		for i := range b.Neighbors {
			n, p := &b.Neighbors[i], item("bgp.neighbors", i)
			if n.LocalASN == 0 {
				n.LocalASN = b.ASN
			}
			if n.HoldTime == 0 {
				n.HoldTime = DefaultBGPHoldTime
			}
			if n.Keepalive == 0 {
				n.Keepalive = (n.HoldTime / 3).Truncate(time.Second)
			}
			if n.ConnectRetry == 0 {
				n.ConnectRetry = DefaultBGPConnectRetry
			}
			if n.Metric == 0 {
				n.Metric = DefaultBGPMetric
			}
			if !d.has(child(p, "prepend")) {
				n.Prepend = DefaultBGPPrepend
			}
			if !d.has(child(p, "advertise_all")) {
				n.AdvertiseAll = true
			}
			if !d.has(child(p, "accept_dynamic")) {
				n.AcceptDynamic = true
			}
			if !n.PrefixLimitRestart.Manual && n.PrefixLimitRestart.After == 0 {
				n.PrefixLimitRestart.After = DefaultPrefixLimitRestart
			}
		}
	}
	for i := range c.LANMonitoring.Targets {
		t := &c.LANMonitoring.Targets[i]
		t.Interval = monitorInterval(*t)
		if t.Timeout == 0 {
			t.Timeout = min(t.Interval, time.Second)
		}
		if t.DownAfter == 0 {
			t.DownAfter = DefaultMonitorDownAfter
		}
		if t.UpAfter == 0 {
			t.UpAfter = DefaultMonitorUpAfter
		}
		if t.LossPercent == 0 {
			t.LossPercent = DefaultMonitorLossPercent
		}
		if t.Window == 0 {
			t.Window = DefaultMonitorWindow
		}
	}
	for i := range c.Notifications.Channels {
		ch := &c.Notifications.Channels[i]
		if ch.Frequency == "" {
			ch.Frequency = Immediate
		}
		if len(ch.Events) == 0 {
			ch.Events = slices.Clone(DefaultNotifyEvents)
		}
	}
}
