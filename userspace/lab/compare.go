package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/curve25519"
)

// PlainRouting routes the sites' LANs through the router in the clear,
// the baseline of the tunnel benchmark. It returns a function that undoes
// it.
func (l *Lab) PlainRouting() (func(), error) {
	var undo [][]string
	for _, s := range l.Sites {
		c := []string{"ip", "route", "add", s.LAN.String(), "via", s.WAN[0].Addr.String()}
		if _, err := in(l.Router, c...); err != nil {
			return nil, err
		}
		undo = append(undo, append([]string{l.Router}, "ip", "route", "del", s.LAN.String()))
		if _, err := in(s.GW, "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
			return nil, err
		}
	}
	return func() {
		for _, u := range undo {
			_, _ = in(u[0], u[1:]...)
		}
	}, nil
}

// WireGuard joins the sites' gateways with wireguard-go (the binary at
// wgBin) over their first WAN links, routing each LAN through it: the
// comparison of the tunnel benchmark. Each interface gets its own name
// because wireguard-go's control sockets share one directory across
// namespaces. It returns a function that stops it all.
func (l *Lab) WireGuard(wgBin string) (func(), error) {
	type node struct {
		s      *Site
		ifname string
		priv   [32]byte
		pub    []byte
		cmd    *exec.Cmd
	}
	var nodes []*node
	stop := func() {
		for _, n := range nodes {
			if n.cmd != nil && n.cmd.Process != nil {
				_ = n.cmd.Process.Kill()
				_ = n.cmd.Wait()
			}
			for _, s := range l.Sites {
				if s != n.s {
					_, _ = in(n.s.GW, "ip", "route", "del", s.LAN.String(), "dev", n.ifname)
				}
			}
			_ = os.Remove(filepath.Join("/var/run/wireguard", n.ifname+".sock"))
		}
	}
	for _, s := range l.Sites {
		n := &node{s: s, ifname: fmt.Sprintf("%swg%s", l.Opts.Prefix, s.Name)}
		if len(n.ifname) > 15 {
			return nil, fmt.Errorf("interface name %s too long", n.ifname)
		}
		if _, err := rand.Read(n.priv[:]); err != nil {
			return nil, err
		}
		n.priv[0] &= 248
		n.priv[31] = (n.priv[31] & 127) | 64
		pub, err := curve25519.X25519(n.priv[:], curve25519.Basepoint)
		if err != nil {
			return nil, err
		}
		n.pub = pub
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		// Foreground, with the PID kept: never WG_PROCESS_FOREGROUND other
		// than 1 (its daemon mode re-executes itself).
		n.cmd = nsCommand(context.Background(), n.s.GW, wgBin, "-f", n.ifname)
		n.cmd.Env = append(os.Environ(), "LOG_LEVEL=error")
		if err := n.cmd.Start(); err != nil {
			stop()
			return nil, err
		}
	}
	for _, n := range nodes {
		var b strings.Builder
		fmt.Fprintf(&b, "set=1\nprivate_key=%s\nlisten_port=51820\nreplace_peers=true\n", hex.EncodeToString(n.priv[:]))
		for _, p := range nodes {
			if p == n {
				continue
			}
			fmt.Fprintf(&b, "public_key=%s\nendpoint=%s:51820\nreplace_allowed_ips=true\nallowed_ip=%s\n",
				hex.EncodeToString(p.pub), p.s.WAN[0].Addr, p.s.LAN)
		}
		b.WriteString("\n")
		if err := uapiSet(filepath.Join("/var/run/wireguard", n.ifname+".sock"), b.String()); err != nil {
			stop()
			return nil, fmt.Errorf("configuring %s: %w", n.ifname, err)
		}
		for _, c := range [][]string{
			{"ip", "link", "set", n.ifname, "mtu", "1420", "up"},
			{"sysctl", "-qw", "net.ipv4.ip_forward=1"},
		} {
			if _, err := in(n.s.GW, c...); err != nil {
				stop()
				return nil, err
			}
		}
		for _, s := range l.Sites {
			if s != n.s {
				if _, err := in(n.s.GW, "ip", "route", "add", s.LAN.String(), "dev", n.ifname); err != nil {
					stop()
					return nil, err
				}
			}
		}
	}
	return stop, nil
}

// uapiSet sends a configuration to a wireguard-go control socket, waiting
// (bounded) for the socket to appear.
func uapiSet(sock, conf string) error {
	deadline := time.Now().Add(10 * time.Second)
	var c net.Conn
	var err error
	for {
		if c, err = net.Dial("unix", sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(conf)); err != nil {
		return err
	}
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if resp := string(buf[:n]); !strings.Contains(resp, "errno=0") {
		return fmt.Errorf("wireguard-go: %s", strings.TrimSpace(resp))
	}
	return nil
}
