// Command xwan-lab runs xwan's lab: a router namespace standing for the
// Internet and sites A and B (a LAN host and a gateway with two WAN links
// each), one xwand per site. Everything it creates is named after
// --prefix and removed on exit, on Ctrl-C, and before a new run.
//
//	xwan-lab demo    build the lab, send traffic, show paths and events, tear down
//	xwan-lab up      build the lab and keep it until Ctrl-C
//	xwan-lab down    remove what a lab with this prefix left behind
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/xwan-dev/xwan/userspace/lab"
)

func main() {
	fs := flag.NewFlagSet("xwan-lab", flag.ExitOnError)
	prefix := fs.String("prefix", "xl", "prefix of every namespace and pin the lab creates")
	dir := fs.String("dir", "", "directory for configs, certificates and logs (default: a new temporary one)")
	xwand := fs.String("xwand", "", "xwand binary (default: next to xwan-lab)")
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: xwan-lab demo|up|down [--prefix P] [--dir D] [--xwand PATH]")
		os.Exit(2)
	}
	cmd := os.Args[1]
	_ = fs.Parse(os.Args[2:])
	opts := lab.Options{Prefix: *prefix, Dir: *dir, Xwand: *xwand}
	var err error
	switch cmd {
	case "down":
		lab.Down(*prefix)
	case "up":
		err = up(opts)
	case "demo":
		err = demo(opts)
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "xwan-lab:", err)
		os.Exit(1)
	}
}

// interrupted tears the lab down on Ctrl-C or SIGTERM whatever is running.
func interrupted(l **lab.Lab) (context.Context, func()) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		if *l != nil && ctx.Err() != nil {
			(*l).Close()
		}
	}()
	return ctx, stop
}

func up(opts lab.Options) error {
	var l *lab.Lab
	ctx, stop := interrupted(&l)
	defer stop()
	l, err := lab.Up(opts)
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Printf("lab %q is up; configs and logs in %s\n", opts.Prefix, l.Opts.Dir)
	for _, s := range l.Sites {
		fmt.Printf("  site %s: gateway netns %s, LAN host netns %s (%s), api %s\n", s.Name, s.GW, s.Host, s.HostAddr, s.Socket)
	}
	fmt.Println("Ctrl-C tears it down.")
	<-ctx.Done()
	return nil
}

func run(name string, args ...string) {
	fmt.Printf("\n$ %s %s\n", name, joinArgs(args))
	c := exec.Command(name, args...)
	c.Stdout, c.Stderr = os.Stdout, os.Stdout
	if err := c.Run(); err != nil {
		fmt.Printf("(%v)\n", err)
	}
}

func joinArgs(a []string) string {
	s := ""
	for i, x := range a {
		if i > 0 {
			s += " "
		}
		s += x
	}
	return s
}

func demo(opts lab.Options) error {
	var l *lab.Lab
	_, stop := interrupted(&l)
	defer stop()
	fmt.Println("building the lab: a router, sites a and b (LAN host + gateway with two WAN links each)")
	l, err := lab.Up(opts)
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Println("waiting for the DTLS mesh (4 paths per site)...")
	if err := l.WaitPaths(4, 30*time.Second); err != nil {
		return err
	}
	a, b := l.Site("a"), l.Site("b")
	ctl := filepath.Join(filepath.Dir(l.Opts.Xwand), "xwanctl")
	run("nsenter", "--net=/run/netns/"+a.Host, "--", "ping", "-c", "3", "-i", "0.2", b.HostAddr.String())
	srv := exec.Command("nsenter", "--net=/run/netns/"+b.Host, "--", "iperf3", "-s", "-1")
	if err := srv.Start(); err == nil {
		if err := lab.WaitListening(b.Host, 5201, 10*time.Second); err != nil {
			return err
		}
		run("nsenter", "--net=/run/netns/"+a.Host, "--", "iperf3", "-c", b.HostAddr.String(), "-t", "3")
		_ = srv.Process.Kill()
		_ = srv.Wait()
	}
	run(ctl, "--socket", a.Socket, "status")
	run(ctl, "--socket", a.Socket, "paths")
	run(ctl, "--socket", a.Socket, "flows")
	run(ctl, "--socket", a.Socket, "events")
	fmt.Println("\ntearing the lab down")
	return nil
}
