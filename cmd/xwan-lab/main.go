// Command xwan-lab runs xwan's lab: a router namespace standing for the
// Internet and sites A and B (a LAN host and a gateway with two WAN links
// each), one xwand per site. Everything it creates is named after
// --prefix and removed on exit, on Ctrl-C, and before a new run.
//
//	xwan-lab demo    build the lab, send traffic, show paths and events, tear down
//	xwan-lab up      build the lab and keep it until Ctrl-C
//	xwan-lab down    remove what a lab with this prefix left behind
//	xwan-lab impair  impair a WAN link of a running `up` lab (loss, delay, jitter, blackhole)
package main

import (
	"context"
	"errors"
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
		fmt.Fprintln(os.Stderr, "usage: xwan-lab demo|up|down [--prefix P] [--dir D] [--xwand PATH]\n       xwan-lab impair --prefix P --site S --link L [--dir to-router|from-router|both] [--loss 5%] [--delay 80ms] [--jitter 20ms] | --blackhole | --clear | --show")
		os.Exit(2)
	}
	cmd := os.Args[1]
	if cmd == "impair" { // flags of its own: see impair below
		if err := impair(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "xwan-lab impair:", err)
			os.Exit(1)
		}
		return
	}
	_ = fs.Parse(os.Args[2:])
	opts := lab.Options{Prefix: *prefix, Dir: *dir, Xwand: *xwand}
	var err error
	switch cmd {
	case "down":
		lab.Down(*prefix)
		_ = os.Remove(lab.DirFile(*prefix)) // a crashed `up` leaves its control socket's pointer
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
	opts.Impairable = true // every WAN link through an impairment bridge: `xwan-lab impair`
	l, err := lab.Up(opts)
	if err != nil {
		return err
	}
	defer l.Close()
	stopControl, err := l.ServeControl()
	if err != nil {
		return err
	}
	defer stopControl()
	fmt.Printf("lab %q is up; configs and logs in %s\n", opts.Prefix, l.Opts.Dir)
	for _, s := range l.Sites {
		fmt.Printf("  site %s: gateway netns %s, LAN host netns %s (%s), api %s\n", s.Name, s.GW, s.Host, s.HostAddr, s.Socket)
	}
	fmt.Printf("impair a link: xwan-lab impair --prefix %s --site %s --link wan1 --loss 5%% --delay 80ms --jitter 20ms (control socket %s)\n",
		opts.Prefix, l.Sites[0].Name, lab.ControlSocket(l.Opts.Dir))
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

// impair changes a link of a running `xwan-lab up` through its control
// socket:
//
//	xwan-lab impair --prefix P --site a --link wan1 [--dir to-router|from-router|both]
//	    [--loss 5%] [--delay 80ms] [--jitter 40ms] | --blackhole | --clear | --show
//
// The flags given replace the direction's whole impairment. --clear
// without --site and --link clears every link; --show (or no site) prints
// every link's impairments and counters.
func impair(args []string) error {
	fs := flag.NewFlagSet("xwan-lab impair", flag.ContinueOnError)
	prefix := fs.String("prefix", "xl", "prefix of the running lab")
	labDir := fs.String("lab-dir", "", "the lab's directory (default: read from "+lab.DirFile("PREFIX")+")")
	site := fs.String("site", "", "site (a, b, ...)")
	link := fs.String("link", "", "WAN link (wan1, wan2)")
	dirFlag := fs.String("dir", "both", "direction: to-router (gateway upload), from-router (download) or both")
	loss := fs.String("loss", "", "loss per frame: 5% or 0.05")
	delay := fs.Duration("delay", 0, "added delay, e.g. 80ms")
	jitter := fs.Duration("jitter", 0, "uniform ± jitter around the delay (at most the delay)")
	blackhole := fs.Bool("blackhole", false, "drop everything")
	clearFlag := fs.Bool("clear", false, "remove the impairments (of both directions, or of --dir)")
	show := fs.Bool("show", false, "print impairments and counters")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	sock := ""
	if *labDir != "" {
		sock = lab.ControlSocket(*labDir)
	} else {
		var err error
		if sock, err = lab.FindControl(*prefix); err != nil {
			return err
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	changes := set["loss"] || set["delay"] || set["jitter"] || *blackhole
	req := lab.ControlRequest{Site: *site, Link: *link, Dir: *dirFlag}
	switch {
	case *clearFlag && changes:
		return errors.New("--clear with --loss, --delay, --jitter or --blackhole")
	case *clearFlag && set["dir"] && *dirFlag != "both":
		req.Op = "impair" // that direction only: to nothing
	case *clearFlag:
		req.Op = "clear"
	case changes:
		req.Op = "impair"
		if *loss != "" {
			v, err := lab.ParseLoss(*loss)
			if err != nil {
				return err
			}
			req.Impairment.Loss = v
		}
		req.Impairment.Delay, req.Impairment.Jitter, req.Impairment.Blackhole = *delay, *jitter, *blackhole
	case *show || (*site == "" && *link == ""):
		req.Op = "show"
	default:
		return errors.New("nothing to do: give --loss, --delay, --jitter, --blackhole, --clear or --show")
	}
	if req.Op != "show" && !(req.Op == "clear" && *site == "" && *link == "") && (*site == "" || *link == "") {
		return errors.New("--site and --link are required")
	}
	links, err := lab.Control(sock, req)
	if err != nil {
		return err
	}
	fmt.Print(lab.FormatStatus(links))
	return nil
}
