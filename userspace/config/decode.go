package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/xwan-dev/xwan/userspace/pki"
	"github.com/xwan-dev/xwan/userspace/policy"
)

// This file is the schema: it walks the yaml.Node tree (not yaml.Unmarshal,
// which loses line numbers and stops at the first type error) and checks
// every field on its own. Relations between fields are in validate.go.

// FieldError is one problem in a configuration file.
type FieldError struct {
	File  string
	Line  int    // 1-based
	Field string // path such as wan[1].precedence; empty for YAML syntax errors
	Msg   string
}

// Error formats the problem as FILE:LINE: FIELD: message (FILE:LINE: message
// when there is no field), the form editors and CI logs know how to jump to.
func (e *FieldError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Field, e.Msg)
}

// Errors is every problem found in one file, in line order.
type Errors []*FieldError

// Error is one problem per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find the individual *FieldError values.
func (es Errors) Unwrap() []error {
	errs := make([]error, len(es))
	for i, e := range es {
		errs[i] = e
	}
	return errs
}

// Load reads and validates the configuration file at path. Relative paths
// in it (certificates, API socket) are resolved against the directory of
// path, made absolute so that the daemon's working directory never matters.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err // *os.PathError already names the file
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	return parse(path, dir, data)
}

// Parse reads and validates a configuration held in memory. file names it
// in error messages, and its directory anchors relative paths.
func Parse(file string, data []byte) (*Config, error) {
	return parse(file, filepath.Dir(file), data)
}

func parse(file, dir string, data []byte) (*Config, error) {
	d := &decoder{file: file, dir: dir, pos: map[string]pos{}, bad: map[string]bool{}}
	root, ok := d.parseYAML(data)
	if !ok {
		return nil, d.result()
	}
	cfg := &Config{File: file}
	d.config(root, cfg)
	d.validate(cfg)
	if len(d.errs) > 0 {
		return nil, d.result()
	}
	d.defaults(cfg)
	return cfg, nil
}

// Defaults, filled in after validation (see the package comment).
const (
	DefaultTunnelPort    = 4754
	DefaultKeepalive     = 10 * time.Second
	DefaultProbeInterval = 300 * time.Millisecond
	DefaultAPISocket     = "/run/xwan/xwand.sock"
	DefaultPinRoot       = "/sys/fs/bpf/xwan"

	// Keepalives must be shorter than MaxKeepalive to keep NAT mappings
	// open: many home and carrier NATs forget a UDP mapping after 30 s.
	MaxKeepalive = 25 * time.Second
	// The probe interval is within [MinProbeInterval, MaxProbeInterval]:
	// probes are the samples of the 10 s quality evaluation, fewer than one
	// per evaluation is no measurement, more than 100/s per path is load.
	MinProbeInterval = 10 * time.Millisecond
	MaxProbeInterval = 10 * time.Second
)

// maxNodes bounds the work of following YAML aliases (a "billion laughs"
// document is small but expands without end). 4,096 rules of twenty nodes
// each are about 80,000.
const maxNodes = 1 << 18

type decoder struct {
	file, dir string
	errs      []found
	pos       map[string]pos  // field path -> where it is, for every field present
	bad       map[string]bool // field paths whose value was refused
	nodes     int             // nodes visited, against maxNodes
}

// pos is a place in the file; the column only orders messages on one line.
type pos struct{ line, col int }

func posOf(n *yaml.Node) pos { return pos{n.Line, n.Column} }

type found struct {
	at  pos
	err *FieldError
}

// maxErrors is as many messages as anyone reads; past it, fix and retry.
const maxErrors = 100

// result is the errors in file order.
func (d *decoder) result() error {
	slices.SortStableFunc(d.errs, func(a, b found) int {
		if a.at.line != b.at.line {
			return a.at.line - b.at.line
		}
		return a.at.col - b.at.col
	})
	var errs Errors
	for i, f := range d.errs {
		if i == maxErrors {
			errs = append(errs, &FieldError{File: d.file, Line: f.at.line,
				Msg: fmt.Sprintf("too many errors (%d more)", len(d.errs)-maxErrors)})
			break
		}
		errs = append(errs, f.err)
	}
	return errs
}

func (d *decoder) errorAt(p pos, field, format string, args ...any) {
	d.errs = append(d.errs, found{p, &FieldError{File: d.file, Line: p.line,
		Field: oneLine(field), Msg: oneLine(fmt.Sprintf(format, args...))}})
}

// oneLine escapes control characters (a quoted YAML key or value may hold
// "\n"), so that every message stays on its own line.
func oneLine(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// fail reports a refused value and marks the field so that the checks in
// validate.go do not report it a second time.
func (d *decoder) fail(n *yaml.Node, field, format string, args ...any) {
	d.bad[field] = true
	d.errorAt(posOf(n), field, format, args...)
}

// at is where field is or, when it is absent, where its nearest present
// parent is: "required" errors point at the mapping that lacks the key.
func (d *decoder) at(field string) pos {
	for {
		if p, ok := d.pos[field]; ok {
			return p
		}
		if field == "" {
			return pos{line: 1}
		}
		if i := strings.LastIndexAny(field, ".["); i >= 0 {
			field = field[:i]
		} else {
			field = ""
		}
	}
}

func (d *decoder) has(field string) bool { _, ok := d.pos[field]; return ok }

func child(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func item(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// parseYAML returns the root node (nil for an empty file) and whether the
// text was well-formed YAML.
func (d *decoder) parseYAML(data []byte) (root *yaml.Node, ok bool) {
	// yaml.v3 reports encoding problems without a line; find them first.
	if line, msg := badText(data); msg != "" {
		d.errorAt(pos{line: line}, "", "syntax error: %s", msg)
		return nil, false
	}
	defer func() {
		if r := recover(); r != nil { // a parser bug must not take the daemon down
			d.errorAt(pos{line: 1}, "", "syntax error: %v", r)
			root, ok = nil, false
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, true
		}
		d.syntax(err, data)
		return nil, false
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		d.errorAt(posOf(&next), "", "syntax error: only one YAML document is allowed")
		return nil, false
	case !errors.Is(err, io.EOF):
		d.syntax(err, data)
		return nil, false
	}
	if len(doc.Content) == 0 {
		return nil, true
	}
	return doc.Content[0], true
}

var (
	yamlLine  = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	yamlAlias = regexp.MustCompile(`^yaml: (?:unknown anchor '(.*)' referenced|anchor '(.*)' value contains itself)$`)
)

// parserProblems are yaml.v3's parser (not scanner) errors: it prints
// their 0-based line, so they need one added.
var parserProblems = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"found undefined tag handle":             true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found duplicate %TAG directive":         true,
}

func (d *decoder) syntax(err error, data []byte) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1 // yaml.v3 leaves the line out when it is the first one
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
		if parserProblems[msg] {
			line++
		}
		if strings.Contains(msg, "tab character") {
			line = tabLine(data, line) // yaml.v3 names the line before
		}
	} else if m := yamlAlias.FindStringSubmatch(err.Error()); m != nil {
		// Alias errors come without a line: find the alias.
		alias := regexp.MustCompile(`\*` + regexp.QuoteMeta(m[1]+m[2]) + `(?:[\s,\]}]|$)`)
		if loc := alias.FindIndex(data); loc != nil {
			line = 1 + bytes.Count(data[:loc[0]], []byte("\n"))
		}
	}
	d.errorAt(pos{line: line}, "", "syntax error: %s", msg)
}

// tabLine is the first line from line on that is indented with a tab.
func tabLine(data []byte, line int) int {
	for i, l := range strings.Split(string(data), "\n") {
		if i+1 >= line && strings.Contains(l[:len(l)-len(strings.TrimLeft(l, " \t"))], "\t") {
			return i + 1
		}
	}
	return line
}

// badText finds bytes YAML does not allow (invalid UTF-8, control
// characters) and returns their line.
func badText(data []byte) (line int, msg string) {
	line = 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return line, fmt.Sprintf("invalid UTF-8 byte 0x%02x", data[i])
		case r == '\n':
			line++
		case r == '\t' || r == '\r' || r == 0x85:
		case r < 0x20 || r >= 0x7f && r < 0xa0 || r == 0xfffe || r == 0xffff:
			return line, fmt.Sprintf("control character %U is not allowed", r)
		}
		i += size
	}
	return 0, ""
}

// resolve follows aliases and counts nodes; nil means "stop here".
func (d *decoder) resolve(n *yaml.Node) *yaml.Node {
	for hops := 0; n != nil && n.Kind == yaml.AliasNode; hops++ {
		if hops > 100 {
			return nil
		}
		n = n.Alias
	}
	if n == nil {
		return nil
	}
	d.nodes++
	if d.nodes == maxNodes {
		d.errorAt(posOf(n), "", "document too large: more than %d nodes, counting what aliases expand to", maxNodes)
	}
	if d.nodes >= maxNodes {
		return nil
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

func kindName(n *yaml.Node) string {
	if isNull(n) {
		return "null"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}

// fields checks that n is a mapping whose keys are all in keys, records
// the line of each, and returns the value nodes by key. Null values are
// left out: `key:` with nothing after it reads as an absent key.
func (d *decoder) fields(n *yaml.Node, path string, keys ...string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	n = d.resolve(n)
	if n == nil || isNull(n) {
		return out
	}
	if n.Kind != yaml.MappingNode {
		d.bad[path] = true
		d.errorAt(posOf(n), pathOrTop(path), "must be a mapping of %s, got %s", strings.Join(keys, ", "), kindName(n))
		return out
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], d.resolve(n.Content[i+1])
		if v == nil {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.errorAt(posOf(k), pathOrTop(path), "keys must be plain names, got %s", kindName(k))
			continue
		}
		field := child(path, k.Value)
		if k.ShortTag() == "!!merge" {
			d.errorAt(posOf(k), pathOrTop(path), "merge keys (<<) are not supported")
			continue
		}
		if !slices.Contains(keys, k.Value) {
			d.errorAt(posOf(k), field, "unknown field%s", suggest(k.Value, keys))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorAt(posOf(k), field, "duplicate key (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		if isNull(v) {
			continue
		}
		d.pos[field] = posOf(k)
		out[k.Value] = v
	}
	return out
}

func pathOrTop(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}

// require reports the keys missing from a mapping read by fields.
func (d *decoder) require(m map[string]*yaml.Node, path string, keys ...string) {
	for _, k := range keys {
		if _, ok := m[k]; !ok && !d.bad[path] {
			d.errorAt(d.at(path), child(path, k), "required")
		}
	}
}

// list checks that n is a sequence and returns its items, recording the
// line of each as path[i].
func (d *decoder) list(n *yaml.Node, path string) []*yaml.Node {
	if n = d.resolve(n); n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "must be a list, got %s", kindName(n))
		return nil
	}
	var items []*yaml.Node
	for i, it := range n.Content {
		if it = d.resolve(it); it == nil {
			return items
		}
		d.pos[item(path, i)] = posOf(it)
		items = append(items, it)
	}
	return items
}

func (d *decoder) scalar(n *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.fail(n, path, "must be %s, got %s", want, kindName(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) str(n *yaml.Node, path string) string {
	s, _ := d.scalar(n, path, "a string")
	return s
}

func (d *decoder) stringList(n *yaml.Node, path string) []string {
	var out []string
	for i, it := range d.list(n, path) {
		if s := d.str(it, item(path, i)); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (d *decoder) boolean(n *yaml.Node, path string) bool {
	var b bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		d.fail(n, path, "must be true or false, got %s", kindName(n))
	}
	return b
}

// integer reads an integer in [lo, hi]; want describes the range.
func (d *decoder) integer(n *yaml.Node, path string, lo, hi int64, want string) (int64, bool) {
	var v int64
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil || v < lo || v > hi {
		d.fail(n, path, "must be %s, got %s", want, valueText(n))
		return 0, false
	}
	return v, true
}

// valueText shows a scalar as written (4, not "4"), anything else by kind.
func valueText(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return n.Value
	}
	return kindName(n)
}

// duration reads a Go duration (10s, 300ms); ok says whether it is in
// range and want says what the range is.
func (d *decoder) duration(n *yaml.Node, field, want string, ok func(time.Duration) bool) time.Duration {
	s, isScalar := d.scalar(n, field, "a duration such as 10s")
	if !isScalar {
		return 0
	}
	v, err := time.ParseDuration(s)
	switch {
	case err != nil:
		d.fail(n, field, "must be a duration with a unit such as 10s or 300ms, got %q", s)
	case !ok(v):
		d.fail(n, field, "must be %s, got %v", want, v)
	default:
		return v
	}
	return 0
}

// --- the schema --------------------------------------------------------

func (d *decoder) config(root *yaml.Node, c *Config) {
	if root != nil {
		d.pos[""] = posOf(root)
	}
	m := d.fields(root, "", "site", "role", "lan", "wan", "hub", "peers", "tunnel",
		"rules", "default", "certificates", "api", "metrics", "bpf",
		"bgp", "lan_monitoring", "notifications", "health")
	if d.bad[""] {
		return
	}
	d.require(m, "", "site", "lan", "wan", "certificates")
	if n := m["site"]; n != nil {
		c.Site = d.str(n, "site")
		if err := pki.ValidateSiteName(c.Site); err != nil && !d.bad["site"] {
			d.fail(n, "site", "%v", err)
		}
	}
	if n := m["role"]; n != nil {
		switch s := d.str(n, "role"); Role(s) {
		case RoleEdge, RoleHub:
			c.Role = Role(s)
		default:
			if !d.bad["role"] {
				d.fail(n, "role", "must be edge or hub, got %q", s)
			}
		}
	}
	if n := m["lan"]; n != nil {
		d.lan(n, &c.LAN)
	}
	if n := m["wan"]; n != nil {
		for i, it := range d.list(n, "wan") {
			c.WAN = append(c.WAN, d.wanLink(it, item("wan", i)))
		}
		if len(c.WAN) == 0 && !d.bad["wan"] {
			d.fail(n, "wan", "at least one WAN link is required")
		}
	}
	if n := m["hub"]; n != nil {
		c.Hub = d.str(n, "hub")
	}
	if n := m["peers"]; n != nil {
		for i, it := range d.list(n, "peers") {
			c.Peers = append(c.Peers, d.peer(it, item("peers", i)))
		}
	}
	if n := m["tunnel"]; n != nil {
		d.tunnel(n, &c.Tunnel)
	}
	if n := m["rules"]; n != nil {
		for i, it := range d.list(n, "rules") {
			c.Rules = append(c.Rules, d.rule(it, item("rules", i)))
		}
	}
	if n := m["default"]; n != nil {
		f := d.fields(n, "default", "transport", "secondary", "link")
		d.action(f, "default", &c.Default)
	}
	if n := m["certificates"]; n != nil {
		f := d.fields(n, "certificates", "ca", "cert", "key")
		d.require(f, "certificates", "ca", "cert", "key")
		c.Certificates.CA = d.path(f["ca"], "certificates.ca")
		c.Certificates.Cert = d.path(f["cert"], "certificates.cert")
		c.Certificates.Key = d.path(f["key"], "certificates.key")
	}
	if n := m["api"]; n != nil {
		f := d.fields(n, "api", "socket")
		c.API.Socket = d.path(f["socket"], "api.socket")
		// sun_path holds 108 bytes with the terminating NUL.
		if len(c.API.Socket) > 107 {
			d.fail(f["socket"], "api.socket", "%s is longer than the 107 bytes a unix socket path may have", c.API.Socket)
		}
	}
	if n := m["metrics"]; n != nil {
		f := d.fields(n, "metrics", "address")
		if n := f["address"]; n != nil {
			c.Metrics.Address = d.str(n, "metrics.address")
			if !d.bad["metrics.address"] {
				if _, port, err := net.SplitHostPort(c.Metrics.Address); err != nil || !validPort(port) {
					d.fail(n, "metrics.address", "must be host:port such as 127.0.0.1:9810, got %q", c.Metrics.Address)
				}
			}
		}
	}
	if n := m["bgp"]; n != nil {
		c.BGP = d.bgp(n)
	}
	if n := m["lan_monitoring"]; n != nil {
		d.lanMonitoring(n, &c.LANMonitoring)
	}
	if n := m["notifications"]; n != nil {
		d.notifications(n, &c.Notifications)
	}
	if n := m["health"]; n != nil {
		d.health(n, &c.Health)
	}
	if n := m["bpf"]; n != nil {
		f := d.fields(n, "bpf", "pin_root")
		if n := f["pin_root"]; n != nil {
			c.BPF.PinRoot = d.str(n, "bpf.pin_root")
			if !d.bad["bpf.pin_root"] {
				if !filepath.IsAbs(c.BPF.PinRoot) {
					d.fail(n, "bpf.pin_root", "must be an absolute path on a bpf file system, got %q", c.BPF.PinRoot)
				}
				c.BPF.PinRoot = filepath.Clean(c.BPF.PinRoot)
			}
		}
	}
}

func validPort(s string) bool {
	p, err := strconv.ParseUint(s, 10, 16)
	return err == nil && p > 0
}

// path reads a file path; relative ones are relative to the config file.
func (d *decoder) path(n *yaml.Node, field string) string {
	if n == nil {
		return ""
	}
	s := d.str(n, field)
	if s == "" {
		if !d.bad[field] {
			d.fail(n, field, "must not be empty")
		}
		return ""
	}
	if !filepath.IsAbs(s) {
		s = filepath.Join(d.dir, s)
	}
	return filepath.Clean(s)
}

func (d *decoder) lan(n *yaml.Node, lan *LAN) {
	f := d.fields(n, "lan", "interfaces", "prefixes")
	d.require(f, "lan", "interfaces", "prefixes")
	if n := f["interfaces"]; n != nil {
		items := d.list(n, "lan.interfaces")
		for i, it := range items {
			lan.Interfaces = append(lan.Interfaces, d.ifname(it, item("lan.interfaces", i)))
		}
		if len(items) == 0 && !d.bad["lan.interfaces"] {
			d.fail(n, "lan.interfaces", "at least one LAN interface is required")
		}
	}
	if n := f["prefixes"]; n != nil {
		lan.Prefixes = d.prefixes(n, "lan.prefixes")
		if len(lan.Prefixes) == 0 && !d.bad["lan.prefixes"] {
			d.fail(n, "lan.prefixes", "at least one LAN prefix is required")
		}
	}
}

// ifname reads a Linux interface name (the kernel's dev_valid_name).
func (d *decoder) ifname(n *yaml.Node, field string) string {
	s := d.str(n, field)
	if d.bad[field] {
		return s
	}
	if s == "" || len(s) > 15 || s == "." || s == ".." || strings.ContainsAny(s, "/: \t\n") {
		d.fail(n, field, "%q is not a Linux interface name (1 to 15 characters, no '/', ':' or spaces)", s)
	}
	return s
}

// name reads the name of a link: a DNS label, like site names, so that it
// can appear in metrics labels and events unquoted.
func (d *decoder) name(n *yaml.Node, field string) string {
	s := d.str(n, field)
	if d.bad[field] {
		return s
	}
	if pki.ValidateSiteName(s) != nil {
		d.fail(n, field, "%q: must be 1 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-'", s)
	}
	return s
}

func (d *decoder) prefixes(n *yaml.Node, path string) []netip.Prefix {
	var out []netip.Prefix
	for i, it := range d.list(n, path) {
		p, _ := d.prefix(it, item(path, i)) // refused ones stay, invalid, to keep indices
		out = append(out, p)
	}
	return out
}

// prefix reads a masked prefix. Host bits are refused, not silently
// cleared: 198.18.10.1/24 usually means the author had another prefix in mind.
func (d *decoder) prefix(n *yaml.Node, field string) (netip.Prefix, bool) {
	s, ok := d.scalar(n, field, "a prefix such as 198.18.10.0/24")
	if !ok {
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		d.fail(n, field, "%q is not a prefix (want address/length such as 198.18.10.0/24)", s)
		return netip.Prefix{}, false
	}
	if p != p.Masked() {
		d.fail(n, field, "%s has host bits set (did you mean %s?)", p, p.Masked())
		return netip.Prefix{}, false
	}
	return p, true
}

// unicast reads an address a tunnel can use.
func unicast(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsMulticast() && a.Zone() == ""
}

func (d *decoder) addrPort(n *yaml.Node, field string) netip.AddrPort {
	s, ok := d.scalar(n, field, "address:port such as 203.0.113.5:4754")
	if !ok {
		return netip.AddrPort{}
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || !unicast(ap.Addr()) || ap.Port() == 0 {
		d.fail(n, field, "%q is not a unicast address:port such as 203.0.113.5:4754 or [2001:db8::5]:4754", s)
		return netip.AddrPort{}
	}
	return ap
}

func (d *decoder) wanLink(n *yaml.Node, path string) WANLink {
	var w WANLink
	f := d.fields(n, path, "name", "interface", "address", "precedence", "bandwidth", "off_cloud", "public")
	d.require(f, path, "name", "interface")
	if n := f["name"]; n != nil {
		w.Name = d.name(n, child(path, "name"))
	}
	if n := f["interface"]; n != nil {
		w.Interface = d.ifname(n, child(path, "interface"))
	}
	if n := f["address"]; n != nil {
		field := child(path, "address")
		if s, ok := d.scalar(n, field, "an address"); ok {
			a, err := netip.ParseAddr(s)
			if err != nil || !unicast(a) {
				d.fail(n, field, "%q is not a unicast IP address", s)
			}
			w.Address = a
		}
	}
	if n := f["precedence"]; n != nil {
		p, _ := d.integer(n, child(path, "precedence"), 1, 3, "1 (active), 2 (passive) or 3 (last resort)")
		w.Precedence = Precedence(p)
	}
	if n := f["bandwidth"]; n != nil {
		bw := child(path, "bandwidth")
		f := d.fields(n, bw, "up", "down")
		if n := f["up"]; n != nil {
			w.BandwidthUp = d.bandwidth(n, child(bw, "up"))
		}
		if n := f["down"]; n != nil {
			w.BandwidthDown = d.bandwidth(n, child(bw, "down"))
		}
	}
	if n := f["off_cloud"]; n != nil {
		w.OffCloud = d.boolean(n, child(path, "off_cloud"))
	}
	if n := f["public"]; n != nil {
		w.Public = d.addrPort(n, child(path, "public"))
	}
	return w
}

var bandwidthRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]+)$`)

var bandwidthUnits = map[string]int64{"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}

// bandwidth reads a rate in bits per second. The unit is mandatory: a bare
// number is ambiguous (bits? bytes? Mbit?) and a wrong guess skews the
// active/active weights silently.
func (d *decoder) bandwidth(n *yaml.Node, field string) uint64 {
	s, ok := d.scalar(n, field, "a rate such as 100Mbit")
	if !ok {
		return 0
	}
	m := bandwidthRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		d.fail(n, field, "%q is not a rate (want a number and a unit: bit, Kbit, Mbit or Gbit, e.g. 100Mbit)", s)
		return 0
	}
	mult, ok := bandwidthUnits[strings.ToLower(m[2])]
	if !ok {
		d.fail(n, field, "unknown unit %q in %q (want bit, Kbit, Mbit or Gbit)", m[2], s)
		return 0
	}
	r, _ := new(big.Rat).SetString(m[1])
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() || !r.Num().IsUint64() {
		d.fail(n, field, "%q is not a whole number of bits per second below 2^64", s)
		return 0
	}
	return r.Num().Uint64()
}

func (d *decoder) peer(n *yaml.Node, path string) Peer {
	var p Peer
	f := d.fields(n, path, "site", "prefixes", "links")
	d.require(f, path, "site")
	if n := f["site"]; n != nil {
		field := child(path, "site")
		p.Site = d.str(n, field)
		if err := pki.ValidateSiteName(p.Site); err != nil && !d.bad[field] {
			d.fail(n, field, "%v", err)
		}
	}
	if n := f["prefixes"]; n != nil {
		p.Prefixes = d.prefixes(n, child(path, "prefixes"))
	}
	if n := f["links"]; n != nil {
		lp := child(path, "links")
		for i, it := range d.list(n, lp) {
			ip := item(lp, i)
			lf := d.fields(it, ip, "name", "endpoint")
			d.require(lf, ip, "name", "endpoint")
			var l PeerLink
			if n := lf["name"]; n != nil {
				l.Name = d.name(n, child(ip, "name"))
			}
			if n := lf["endpoint"]; n != nil {
				l.Endpoint = d.addrPort(n, child(ip, "endpoint"))
			}
			p.Links = append(p.Links, l)
		}
	}
	return p
}

func (d *decoder) tunnel(n *yaml.Node, t *Tunnel) {
	f := d.fields(n, "tunnel", "port", "keepalive", "mss_clamp", "probe_interval", "rekey_interval")
	if n := f["port"]; n != nil {
		p, _ := d.integer(n, "tunnel.port", 1, 65535, "a UDP port 1-65535")
		t.Port = uint16(p)
	}
	if n := f["keepalive"]; n != nil {
		t.Keepalive = d.duration(n, "tunnel.keepalive", "more than 0s and less than 25s (NAT mappings expire)",
			func(v time.Duration) bool { return v > 0 && v < MaxKeepalive })
	}
	if n := f["mss_clamp"]; n != nil {
		t.MSSClamp = d.boolean(n, "tunnel.mss_clamp")
	}
	if n := f["probe_interval"]; n != nil {
		t.ProbeInterval = d.duration(n, "tunnel.probe_interval", "between 10ms and 10s",
			func(v time.Duration) bool { return v >= MinProbeInterval && v <= MaxProbeInterval })
	}
	if n := f["rekey_interval"]; n != nil {
		t.RekeyInterval = d.duration(n, "tunnel.rekey_interval", "between 1s and 24h",
			func(v time.Duration) bool { return v >= time.Second && v <= 24*time.Hour })
	}
}

// rule reads one rule. A field that fails to decode is left at a neutral
// value (transport drop, protocol tcp, any endpoint or port) so that
// policy validation only reports problems of its own.
func (d *decoder) rule(n *yaml.Node, path string) policy.Rule {
	r := policy.Rule{Proto: -1}
	f := d.fields(n, path, "name", "source", "destination", "protocol", "source_ports",
		"destination_ports", "vlan", "transport", "secondary", "link",
		"applications", "categories", "domains")
	d.require(f, path, "name", "transport")
	if n := f["name"]; n != nil {
		field := child(path, "name")
		// Rule names label metrics and events.
		if r.Name = d.str(n, field); !d.bad[field] && (r.Name == "" || strings.IndexFunc(r.Name, unicode.IsControl) >= 0) {
			d.fail(n, field, "must be a non-empty name without control characters, got %q", r.Name)
		}
	}
	if n := f["source"]; n != nil {
		r.Src = d.endpoint(n, child(path, "source"))
	}
	if n := f["destination"]; n != nil {
		r.Dst = d.endpoint(n, child(path, "destination"))
	}
	if n := f["protocol"]; n != nil {
		r.Proto = d.protocol(n, child(path, "protocol"))
	}
	if n := f["source_ports"]; n != nil {
		r.SrcPorts = d.ports(n, child(path, "source_ports"))
	}
	if n := f["destination_ports"]; n != nil {
		r.DstPorts = d.ports(n, child(path, "destination_ports"))
	}
	if n := f["vlan"]; n != nil {
		v, _ := d.integer(n, child(path, "vlan"), 1, 4094, "a VLAN id 1-4094 (leave it out to match any)")
		r.VLAN = uint16(v)
	}
	d.action(f, path, &r.Action)
	if f["transport"] == nil || d.bad[child(path, "transport")] {
		r.Action.Transport = policy.Drop
	}
	if n := f["applications"]; n != nil {
		r.Applications = d.stringList(n, child(path, "applications"))
	}
	if n := f["categories"]; n != nil {
		r.Categories = d.stringList(n, child(path, "categories"))
	}
	if n := f["domains"]; n != nil {
		r.Domains = d.stringList(n, child(path, "domains"))
	}
	return r
}

// action reads transport, secondary and link from a rule or from default.
func (d *decoder) action(f map[string]*yaml.Node, path string, a *policy.Action) {
	if n := f["transport"]; n != nil {
		field := child(path, "transport")
		if s, ok := d.scalar(n, field, "a transport"); ok {
			t, err := policy.ParseTransport(strings.ToLower(s))
			if err != nil {
				d.fail(n, field, "%v", err)
			}
			a.Transport = t
		}
	}
	if n := f["secondary"]; n != nil {
		field := child(path, "secondary")
		if s, ok := d.scalar(n, field, "a secondary transport"); ok {
			v, err := policy.ParseSecondary(strings.ToLower(s))
			if err != nil {
				d.fail(n, field, "%v", err)
			}
			a.Secondary = v
		}
	}
	if n := f["link"]; n != nil {
		a.PreferredLink = d.str(n, child(path, "link"))
	}
}

// endpoint reads `any`, {prefix: P} or {site: S}.
func (d *decoder) endpoint(n *yaml.Node, path string) policy.Endpoint {
	var e policy.Endpoint
	if n.Kind == yaml.ScalarNode {
		if n.Value != "any" {
			d.fail(n, path, "must be any, {prefix: P} or {site: S}, got %q", n.Value)
		}
		return e
	}
	f := d.fields(n, path, "prefix", "site")
	if d.bad[path] {
		return e
	}
	if len(f) == 0 {
		d.fail(n, path, "needs a prefix or a site (or write any)")
	}
	if n := f["prefix"]; n != nil {
		e.Prefix, _ = d.prefix(n, child(path, "prefix"))
	}
	if n := f["site"]; n != nil {
		e.Site = d.str(n, child(path, "site"))
	}
	return e
}

var protocols = map[string]int{"any": -1, "tcp": policy.ProtoTCP, "udp": policy.ProtoUDP, "icmp": 1, "icmpv6": 58}

func (d *decoder) protocol(n *yaml.Node, field string) int {
	const want = "any, tcp, udp, icmp, icmpv6 or a protocol number 0-255"
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
		v, ok := d.integer(n, field, 0, 255, want)
		if !ok {
			return policy.ProtoTCP
		}
		return int(v)
	}
	s, ok := d.scalar(n, field, want)
	if p, known := protocols[strings.ToLower(s)]; ok && known {
		return p
	}
	if v, err := strconv.ParseUint(s, 10, 8); ok && err == nil {
		return int(v) // "17" as well as 17
	}
	if ok {
		d.fail(n, field, "must be %s, got %q", want, s)
	}
	return policy.ProtoTCP
}

// ports reads 443, "443" or "1000-2000". A refused value reads as any.
func (d *decoder) ports(n *yaml.Node, field string) policy.PortRange {
	s, ok := d.scalar(n, field, `a port or a range such as "1000-2000"`)
	if !ok {
		return policy.PortRange{}
	}
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	l, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	h, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
	switch {
	case err1 != nil || err2 != nil:
		d.fail(n, field, "%q is not a port 1-65535 or a range such as 1000-2000", s)
	case h == 0:
		// The zero range is the model's "any port": refuse it rather
		// than silently matching everything.
		d.fail(n, field, "port 0 alone cannot be matched (leave the field out to match any port)")
	case l > h:
		d.fail(n, field, "bad port range %q: low end above high end", s)
	default:
		return policy.PortRange{Lo: uint16(l), Hi: uint16(h)}
	}
	return policy.PortRange{}
}

// suggest returns " (did you mean X?)" for the key closest to an unknown
// one: same letters up to case, '-' and '_', or a few edits away.
func suggest(key string, keys []string) string {
	norm := func(s string) string { return strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(s)) }
	// Short keys get fewer edits, or every typo would suggest something.
	best, bestD := "", min(2, max(1, len(key)/3))+1
	for _, k := range keys {
		if norm(k) == norm(key) {
			return fmt.Sprintf(" (did you mean %s?)", k)
		}
		if dist := editDistance(key, k); dist < bestD {
			best, bestD = k, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// editDistance is the Levenshtein distance, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
