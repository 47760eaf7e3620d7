// Command xwan-bench measures xwan's data path and prints one line per
// case in a fixed, greppable form (see docs/bench.md).
//
//	xwan-bench classifier    kernel classifier, BPF_PROG_TEST_RUN
//	xwan-bench tunnel        iperf3 through xwan, wireguard-go and the plain path, in the lab
//	xwan-bench failover      blackhole the active link under a 200 packet/s stream, in the lab
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: xwan-bench classifier|tunnel|failover")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "classifier":
		err = benchClassifier(os.Stdout)
	case "failover":
		err = failoverBench{trials: 3}.run(os.Stdout)
	case "tunnel":
		err = tunnelBench{seconds: 10, streams: []int{1, 4}}.run(os.Stdout)
	default:
		err = fmt.Errorf("unknown benchmark %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "xwan-bench:", err)
		os.Exit(1)
	}
}
