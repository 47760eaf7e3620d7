// Command xwanctl is xwan's command line.
//
//	xwanctl ca init --dir DIR
//	xwanctl cert issue --ca-dir DIR --site NAME [--out DIR]
//	xwanctl [--socket PATH] status | paths | flows | events [-f]   (add --json for JSON)
//	xwanctl [--socket PATH] routes | bgp [enable|disable NAME] | monitors
//	xwanctl [--socket PATH] test-connectivity --to IP [--from ADDR]   (exit 0 success, 1 failed, 2 error)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/xwan-dev/xwan/userspace/api"
	"github.com/xwan-dev/xwan/userspace/events"
	"github.com/xwan-dev/xwan/userspace/pki"
)

const usage = `usage:
  xwanctl ca init --dir DIR
  xwanctl cert issue --ca-dir DIR --site NAME [--out DIR]
  xwanctl [--socket PATH] [--json] status | paths | flows | events [-f]
  xwanctl [--socket PATH] [--json] routes | bgp [enable|disable NAME] | monitors
  xwanctl [--socket PATH] [--json] test-connectivity --to IP [--from ADDR]
`

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		var status exitStatus // the command said why (interconnect.go)
		if errors.As(err, &status) {
			os.Exit(int(status))
		}
		fmt.Fprintln(os.Stderr, "xwanctl:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("xwanctl", flag.ContinueOnError)
	socket := fs.String("socket", api.DefaultSocket, "xwand's API socket")
	asJSON := fs.Bool("json", false, "print JSON")
	fs.Usage = func() { fmt.Fprint(os.Stderr, usage) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return fmt.Errorf("no command")
	}
	c := api.NewClient(*socket)
	switch rest[0] {
	case "ca":
		return caCmd(rest[1:], out)
	case "cert":
		return certCmd(rest[1:], out)
	case "status":
		st, err := c.Status()
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(out, st)
		}
		return printStatus(out, st)
	case "paths":
		ps, err := c.Paths()
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(out, ps)
		}
		return printPaths(out, ps)
	case "flows":
		fl, err := c.Flows()
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(out, fl)
		}
		return printFlows(out, fl)
	case "events":
		return eventsCmd(c, rest[1:], out, *asJSON)
	case "routes":
		return routesCmd(c, out, *asJSON)
	case "bgp":
		return bgpCmd(c, rest[1:], out, *asJSON)
	case "monitors":
		return monitorsCmd(c, out, *asJSON)
	case "test-connectivity":
		return testConnectivityCmd(c, rest[1:], out, *asJSON)
	}
	fs.Usage()
	return fmt.Errorf("unknown command %q", rest[0])
}

func caCmd(args []string, out io.Writer) error {
	if len(args) == 0 || args[0] != "init" {
		return fmt.Errorf("usage: xwanctl ca init --dir DIR")
	}
	fs := flag.NewFlagSet("ca init", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory for ca.pem and ca-key.pem")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("ca init: --dir is required")
	}
	if err := pki.InitCA(*dir); err != nil {
		return err
	}
	cert, key := pki.CAFiles(*dir)
	fmt.Fprintf(out, "mesh CA created: %s, %s\n", cert, key)
	return nil
}

func certCmd(args []string, out io.Writer) error {
	if len(args) == 0 || args[0] != "issue" {
		return fmt.Errorf("usage: xwanctl cert issue --ca-dir DIR --site NAME [--out DIR]")
	}
	fs := flag.NewFlagSet("cert issue", flag.ContinueOnError)
	caDir := fs.String("ca-dir", "", "the mesh CA's directory")
	site := fs.String("site", "", "site name (goes in the certificate)")
	outDir := fs.String("out", "", "where to write <site>.pem and <site>-key.pem (default: --ca-dir)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *caDir == "" || *site == "" {
		return fmt.Errorf("cert issue: --ca-dir and --site are required")
	}
	if *outDir == "" {
		*outDir = *caDir
	}
	if err := pki.IssueSite(*caDir, *site, *outDir); err != nil {
		return err
	}
	cert, key := pki.SiteFiles(*outDir, *site)
	fmt.Fprintf(out, "certificate for site %s: %s, %s\n", *site, cert, key)
	return nil
}

func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func table(out io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(out, 0, 4, 2, ' ', 0) }

func printStatus(out io.Writer, st api.Status) error {
	fmt.Fprintf(out, "site %s (%s), up %s, rule generation %d (%d rules), paths %d/%d up, inner MTU %d\n",
		st.Site, st.Role, time.Since(st.Started).Round(time.Second), st.Generation, st.Rules, st.PathsUp, st.PathsTotal, st.InnerMTU)
	w := table(out)
	fmt.Fprintln(w, "LINK\tINTERFACE\tADDRESS\tPRECEDENCE\tOFF-CLOUD")
	for _, l := range st.Links {
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%v\n", l.Name, l.Interface, l.Address, l.Precedence, l.OffCloud)
	}
	w.Flush()
	for _, part := range []struct {
		title string
		m     map[string]api.Counter
	}{{"LAN program", st.Reasons}, {"WAN guard", st.WAN}} {
		keys := make([]string, 0, len(part.m))
		for k := range part.m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, " %s=%d", k, part.m[k].Packets)
		}
		fmt.Fprintf(out, "%s packets:%s\n", part.title, b.String())
	}
	return nil
}

func printPaths(out io.Writer, ps []api.Path) error {
	w := table(out)
	fmt.Fprintln(w, "ID\tSITE\tLINK\tENDPOINT\tSESSION\tHEALTH\tRTT\tJITTER\tLOSS\tWEIGHT\tSHARE\tPACKETS\tBYTES\tNOTE")
	metric := func(v float64, unit string) string {
		if v < 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f%s", v, unit)
	}
	for _, p := range ps {
		note := p.LastError
		if len(p.Alerts) > 0 {
			note = "alerts: " + strings.Join(p.Alerts, ",")
		}
		health := p.Health
		if p.Selected {
			health += "*"
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%.1f%%\t%d\t%d\t%s\n", p.ID, p.Site, p.Link, p.Endpoint,
			p.State, health, metric(p.RTTms, "ms"), metric(p.JitterMs, "ms"), metric(p.LossPct, "%"),
			p.Weight, 100*p.Share, p.Packets, p.Bytes, note)
	}
	fmt.Fprintln(w, "(* takes the site's new flows)")
	return w.Flush()
}

func printFlows(out io.Writer, fl []api.Flow) error {
	w := table(out)
	fmt.Fprintln(w, "SRC\tDST\tPROTO\tVLAN\tRULE\tTRANSPORT\tPATH\tSITE\tAGE")
	for _, f := range fl {
		src, dst := f.Src, f.Dst
		if f.Sport != 0 || f.Dport != 0 {
			src, dst = fmt.Sprintf("%s:%d", f.Src, f.Sport), fmt.Sprintf("%s:%d", f.Dst, f.Dport)
		}
		tr := f.Transport
		if f.Secondary {
			tr += " (secondary)"
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\t%s\t%d\t%s\t%.0fs\n", src, dst, f.Proto, f.VLAN, f.Rule, tr, f.Path, f.Site, f.AgeSec)
	}
	return w.Flush()
}

func printEvent(out io.Writer, e events.Event, asJSON bool) {
	if asJSON {
		b, _ := json.Marshal(e)
		fmt.Fprintln(out, string(b))
		return
	}
	fmt.Fprintf(out, "%s %-22s", e.Time.Format(time.RFC3339Nano), e.Type)
	for _, kv := range [][2]string{{"site", e.Site}, {"link", e.Link}, {"remote", e.Remote}, {"reason", e.Reason}} {
		if kv[1] != "" {
			fmt.Fprintf(out, " %s=%q", kv[0], kv[1])
		}
	}
	keys := make([]string, 0, len(e.Detail))
	for k := range e.Detail {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(out, " %s=%q", k, e.Detail[k])
	}
	fmt.Fprintln(out)
}

func eventsCmd(c *api.Client, args []string, out io.Writer, asJSON bool) error {
	fs := flag.NewFlagSet("events", flag.ContinueOnError)
	follow := fs.Bool("f", false, "follow: print new events as they happen")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !*follow {
		evs, err := c.Events()
		if err != nil {
			return err
		}
		for _, e := range evs {
			printEvent(out, e, asJSON)
		}
		return nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return c.Follow(ctx, func(e events.Event) bool {
		printEvent(out, e, asJSON)
		return true
	})
}
