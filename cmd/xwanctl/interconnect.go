package main

import (
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/xwan-dev/xwan/userspace/api"
)

// The cloud-interconnect commands (docs/bgp.md):
//
//	xwanctl routes
//	xwanctl bgp [enable|disable NAME]
//	xwanctl monitors
//	xwanctl test-connectivity --to IP [--from ADDR]

// exitStatus ends xwanctl with a status and no message of its own (the
// command printed what there is to say).
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func routesCmd(c *api.Client, out io.Writer, asJSON bool) error {
	rs, err := c.Routes()
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(out, rs)
	}
	w := table(out)
	fmt.Fprintln(w, "\tTYPE\tPREFIX\tNEXT HOP\tINTERFACE\tMETRIC\tPEER\tDATAPATH\tNOTE")
	for _, r := range rs {
		active := " "
		if r.Active {
			active = "*"
		}
		note := r.Note
		if r.State != "" {
			note = strings.TrimSpace("site " + r.State + " " + note)
		}
		if len(r.ASPath) > 0 {
			attrs := "as-path " + asPath(r.ASPath)
			if r.LocalPref != 0 {
				attrs += fmt.Sprintf(", local-pref %d", r.LocalPref)
			}
			if r.MED != 0 {
				attrs += fmt.Sprintf(", med %d", r.MED)
			}
			note = strings.TrimSpace(attrs + "  " + note)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", active, r.Type, r.Prefix, dash(r.NextHop), dash(r.Interface),
			r.Metric, dash(r.Peer), dash(r.Datapath), note)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "* active: the route the kernel and the LAN program use")
	return nil
}

func asPath(p []uint32) string {
	s := make([]string, len(p))
	for i, a := range p {
		s[i] = fmt.Sprint(a)
	}
	return strings.Join(s, " ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func bgpCmd(c *api.Client, args []string, out io.Writer, asJSON bool) error {
	if len(args) > 0 {
		if len(args) != 2 || (args[0] != "enable" && args[0] != "disable") {
			return fmt.Errorf("usage: xwanctl bgp [enable|disable NAME]")
		}
		if err := c.SetBGPNeighbor(args[1], args[0] == "enable"); err != nil {
			return err
		}
		fmt.Fprintf(out, "neighbor %s %sd\n", args[1], args[0])
		return nil
	}
	ns, err := c.BGPNeighbors()
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(out, ns)
	}
	w := table(out)
	fmt.Fprintln(w, "NEIGHBOR\tPEER\tAS\tSTATE\tUPTIME\tHOLD/KEEPALIVE\tRECEIVED\tACCEPTED\tADVERTISED\tACTIVE\tMETRIC\tLAST ERROR")
	for _, n := range ns {
		state := n.State
		if n.AdminState != "up" {
			state += " (" + n.AdminState + ")"
		}
		uptime := "-"
		if n.State == "established" {
			uptime = (time.Duration(n.UptimeSec) * time.Second).String()
		}
		lastErr := n.LastError
		if lastErr != "" && !n.LastErrorAt.IsZero() {
			lastErr += " (" + time.Since(n.LastErrorAt).Round(time.Second).String() + " ago)"
		}
		if !n.RestartAt.IsZero() {
			lastErr += fmt.Sprintf("; restart in %s", time.Until(n.RestartAt).Round(time.Second))
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%gs/%gs\t%d\t%d\t%d\t%d\t%d\t%s\n", n.Name, n.Peer, n.PeerASN, state, uptime,
			n.HoldTimeSec, n.KeepaliveSec, n.Received, n.Accepted, n.Advertised, n.Active, n.Metric, dash(lastErr))
	}
	return w.Flush()
}

func monitorsCmd(c *api.Client, out io.Writer, asJSON bool) error {
	ms, err := c.Monitors()
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(out, ms)
	}
	w := table(out)
	fmt.Fprintln(w, "TARGET\tADDRESS\tSTATE\tSINCE\tLOSS\tRTT\tLAST PROBE")
	for _, m := range ms {
		since := "-"
		if !m.Since.IsZero() {
			since = time.Since(m.Since).Round(time.Second).String()
		}
		rtt := "-"
		if m.RTTSec > 0 {
			rtt = (time.Duration(m.RTTSec * float64(time.Second))).Round(time.Microsecond).String()
		}
		last := m.LastOutcome
		if m.LastReason != "" {
			last += ": " + m.LastReason
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%.0f%%\t%s\t%s\n", m.Name, m.Address, m.State, since, 100*m.Loss, rtt, dash(last))
	}
	return w.Flush()
}

// testConnectivityCmd prints Success, Failed or Error with the reason and
// exits 0, 1 or 2 accordingly.
func testConnectivityCmd(c *api.Client, args []string, out io.Writer, asJSON bool) error {
	fs := flag.NewFlagSet("test-connectivity", flag.ContinueOnError)
	to := fs.String("to", "", "the address to reach (required)")
	from := fs.String("from", "", "the source address (default: the kernel's choice)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *to == "" || fs.NArg() > 0 {
		return fmt.Errorf("usage: xwanctl test-connectivity --to IP [--from ADDR]")
	}
	toAddr, err := netip.ParseAddr(*to)
	if err != nil {
		return fmt.Errorf("--to %q: not an IP address", *to)
	}
	var fromAddr netip.Addr
	if *from != "" {
		if fromAddr, err = netip.ParseAddr(*from); err != nil {
			return fmt.Errorf("--from %q: not an IP address", *from)
		}
	}
	res, err := c.TestConnectivity(toAddr, fromAddr)
	if err != nil {
		return err
	}
	if asJSON {
		if err := printJSON(out, res); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(out, connectivityLine(res))
	}
	switch res.Outcome {
	case api.ConnectivitySuccess:
		return nil
	case api.ConnectivityFailed:
		return exitStatus(1)
	}
	return exitStatus(2)
}

func connectivityLine(r api.ConnectivityResult) string {
	src := ""
	if r.From != "" {
		src = " from " + r.From
	}
	switch r.Outcome {
	case api.ConnectivitySuccess:
		rtt := time.Duration(r.RTTSec * float64(time.Second)).Round(time.Microsecond)
		return fmt.Sprintf("Success: %s answered%s in %s", r.To, src, rtt)
	case api.ConnectivityFailed:
		return fmt.Sprintf("Failed: %s%s: %s", r.To, src, r.Reason)
	}
	return fmt.Sprintf("Error: %s%s: %s", r.To, src, r.Reason)
}
