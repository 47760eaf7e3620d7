// Command xwand is the xwan gateway daemon.
//
//	xwand -config /etc/xwan/xwand.yaml   run
//	xwand -check /etc/xwan/xwand.yaml    validate the file, touch nothing
//	xwand -cleanup [-pin-root DIR]       remove what xwan pinned in bpffs (detaches XDP)
//
// Events are written to standard output as JSON lines.

// Go opens listening sockets as MPTCP by default, and MPTCP sockets refuse
// TCP MD5 keys: BGP neighbours with a password need plain TCP.
//
//go:debug multipathtcp=0
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/xwan-dev/xwan/loader"
	"github.com/xwan-dev/xwan/userspace/api"
	"github.com/xwan-dev/xwan/userspace/config"
	"github.com/xwan-dev/xwan/userspace/gateway"
)

func main() {
	cfgPath := flag.String("config", "/etc/xwan/xwand.yaml", "configuration file")
	check := flag.String("check", "", "validate this configuration file and exit")
	cleanup := flag.Bool("cleanup", false, "remove xwan's pinned BPF objects and exit")
	pinRoot := flag.String("pin-root", loader.DefaultPinRoot, "bpffs directory (with -cleanup)")
	flag.Parse()

	switch {
	case *check != "":
		if _, err := config.Load(*check); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("%s: ok\n", *check)
		return
	case *cleanup:
		if err := loader.Cleanup(*pinRoot); err != nil {
			fmt.Fprintln(os.Stderr, "xwand:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*cfgPath); err != nil {
		fmt.Fprintln(os.Stderr, "xwand:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	gateway.StartPprof() // only with XWAND_PPROF set
	g, err := gateway.New(cfg, gateway.Options{EventLog: os.Stdout})
	if err != nil {
		return err
	}
	defer g.Close()
	if err := g.Start(); err != nil {
		return err
	}
	srv, err := api.Listen(cfg.API.Socket, g)
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Fprintf(os.Stderr, "xwand: site %s running (api %s)\n", cfg.Site, cfg.API.Socket)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	s := <-sig
	fmt.Fprintf(os.Stderr, "xwand: %s, stopping\n", s)
	return nil
}
