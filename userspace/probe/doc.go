// Package probe measures one tunnel path from inside the tunnel: latency,
// jitter and loss over a sliding window, and a fast "down" verdict when
// probes stop coming back. It is pure logic: it never reads a clock, never
// sleeps and never does I/O. Every method takes the time (`now`) from the
// caller, so tests drive time and the gateway passes time.Now().
//
// # Both ends measure
//
// Each end of a path runs one Prober. It sends its own probes (frame type
// tunnel.FrameProbe) every Interval and answers the peer's probes with
// replies (tunnel.FrameProbeReply) on the same session. A reply echoes the
// probe's sequence number and send time and says how long the responder
// held the probe, so the prober computes the round trip on its own clock:
//
//	RTT = now - echoed send time - hold
//
// No clock synchronisation is needed; see Packet for the wire layout.
//
// # Measurements (Stats)
//
//   - RTT: the latest sample and the mean over the answered probes sent in
//     the last Window (default 10 s). The smoothed RTT and its variance
//     (RFC 6298: 1/8, 1/4) set the timers below.
//   - Loss: lost/sent over the probes whose timeout expired in the last
//     Window. A probe is lost when no reply arrived within its timeout,
//     max(Timeout, 3 x SRTT) (default max(1 s, 3 x SRTT)); a later reply is
//     "late" and still counts as lost. Counting only probes whose fate is
//     known keeps in-flight probes out of the denominator, at the price of
//     a lag of one timeout.
//   - Jitter: RFC 3550 interarrival jitter, J += (|D| - J)/16, where D is
//     the difference of one-way transit times of consecutive replies,
//     computed separately for each direction:
//     out (this end to the peer): transit = (reply sent - hold) - probe
//     sent, the peer's receive time on the peer's clock minus our send
//     time on ours; in (peer to this end): transit = reply receive time
//     on our clock minus reply sent on the peer's. The unknown offset
//     between the clocks cancels in D; clock rate differences (tens of
//     ppm) add microseconds per 300 ms. One-way transit differences rather
//     than consecutive RTTs because jitter is what a one-way stream (voice,
//     video) suffers from: an RTT difference mixes both directions' delay
//     variations and the responder's scheduling, and cannot say which way
//     is bad. Jitter reports max(out, in): a path is as good as its worse
//     direction, and both ends then see nearly the same figure for the
//     same pair of links, so their per-site decisions agree.
//   - ConsecutiveMisses and Down, below.
//
// # Down: sub-second blackhole detection
//
// A probe is missed once it is overdue: no reply SRTT + max(4 x RTTVAR,
// Margin) after it was sent (Margin default 50 ms; before the first RTT
// sample a probe is overdue at its timeout). ConsecutiveMisses counts
// overdue unanswered probes from the newest backwards, skipping probes
// still in flight, until an answered one; Down is ConsecutiveMisses >=
// DownAfter (default 3). A reply to any of them, even after it was
// overdue (but within its timeout), ends the streak: the path is alive.
//
// Why an RTT-derived deadline rather than "missed when the next probe is
// sent": with RTTs above the interval (satellite, or 400 ms paths that are
// still acceptable under the 600 ms latency threshold) every probe would
// be missed by that rule; and rather than the loss timeout (1 s): three
// misses would then take 0.9 + 1 s. The probes the blackhole swallows
// start with one sent less than one interval before it begins (minus the
// time its reply needs to leave the peer, RTT/2 at most); the third is
// sent two intervals later and is overdue SRTT + Margin after that. So
// with a steady RTT r the path is down between 2 x Interval + Margin and
// 3 x Interval + Margin + r/2 after the blackhole starts: 650 to 950 ms +
// r/2 with the defaults, under 1 s for any path with r under 100 ms. A
// jittery path adds 4 x RTTVAR - Margin when that is positive: the price
// of not calling a short queueing spike a blackhole. A delay spike that
// lasts longer than that is indistinguishable from a blackhole until the
// late replies arrive; they end the streak (and count as no loss when
// they beat the timeout). TestDownDetection sweeps the phase and the RTT.
//
// # Wiring
//
// A Prober is safe for concurrent use: the gateway's probe loop calls
// Next (sends what it returns as tunnel.FrameProbe) and Down, the
// session's reader goroutine calls OnReply and OnProbe (sends the reply
// as tunnel.FrameProbeReply), and anything may call Stats. NextDue says
// when to call Next and Down again.
package probe
