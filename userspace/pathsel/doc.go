// Package pathsel decides which paths carry which flows to each remote
// site, and writes that decision as the Maglev-style consistent-hash
// tables the LAN program reads (site_paths). It is pure logic: every
// method takes the time from the caller, nothing sleeps, nothing does I/O.
//
// Inputs, per path (one per local WAN link and remote endpoint): its
// session going up or down (Connected), its prober's Down verdict
// (ProbeDown, immediate), and its probe statistics at each evaluation
// (Tick). Outputs: per-site tables (Tables), a migration plan for
// established flows (Moves), and events (LinkQualityAlert/Clear,
// PathFailover/Failback, PathStateChange).
//
// # Path health
//
//	from      to        when
//	Down      Up        the session comes up for the first time
//	Down      Degraded  alive again (session up, probes answered) after having been Up
//	any       Down      the session goes down, or the prober's Down (DownAfter
//	                    probes lost in a row): at once, without waiting for an evaluation
//	Up        Degraded  at an evaluation: a metric bad in FailBad of the last FailOf
//	Degraded  Up        at an evaluation: no alert left and, after a Down, RecoverGood
//	                    evaluations in a row with every metric good
//
// Up is acceptable; Degraded is alive but unacceptable; Down is dead.
// Metrics (per site thresholds, defaults from the product):
//
//	metric   value judged                      fail above   good at or under
//	loss     probe.Stats.Loss over the window  3 %          2.4 %  (and >= 2 lost probes to fail)
//	jitter   probe.Stats.Jitter (worse way)    30 ms        24 ms
//	latency  probe.Stats.RTTMean, round trip   600 ms       480 ms
//
// Each metric keeps its own history: it alerts (LinkQualityAlert) when it
// was bad in FailBad of the last FailOf evaluations, and clears
// (LinkQualityClear) after RecoverGood good evaluations in a row; a value
// between the two thresholds is neither and breaks a good streak. A path
// with an alert is Degraded. An evaluation with fewer than MinSamples
// decided probes gives no verdict. A path that comes back from Down
// (session or probes) is Degraded ("recovering") until RecoverGood
// evaluations in a row have every metric good; since the probe window
// still holds the outage's losses, that takes a clean window first. The
// "lost_in_a_row" alert is raised when probes stop coming back and
// cleared only when the path has recovered, so a flapping path raises it
// once. A path is Up at once the first time its session comes up:
// there is nothing to judge it by yet.
//
// # Choice of paths, per site
//
// Paths are ranked by (local precedence, remote precedence): 1 active,
// 2 passive; a path on a last-resort link (either end) never carries
// off-cloud traffic. The site's table 0 holds the eligible paths of the
// best rank that has any. Eligible means Up and, for a path that has been
// Degraded or Down, Up for at least HoldDown. Hence:
//
//   - active/active: new flows are spread over the eligible active paths
//     in proportion to their link's bandwidth (a link's bandwidth is
//     shared by its paths, so links, not endpoints, get the shares); an
//     unacceptable path gets no new flows;
//   - active/passive: the passive paths take new flows at once when no
//     active path is eligible (down or unacceptable), and give them back
//     when an active path has been acceptable for HoldDown;
//   - with no eligible path at all, rather than nothing: Up paths still in
//     hold-down, else alive Degraded ones (best rank first); with no alive
//     path the site has no table and rules use their secondary transport.
//
// Each local link also gets a table of its own eligible paths (best remote
// rank), for rules with a preferred link, whatever the link's precedence;
// a link without one has no table and the kernel falls back to table 0.
// The decision is local to each site's gateway: the two ends of a mesh
// pair may choose different links (asymmetric failover, active/passive
// facing active/active); traffic flows both ways as long as each side's
// choice is alive, which each side checks for itself.
//
// # Tables
//
// Tables are policy.MaglevSlots path ids. They are kept from one decision
// to the next and changed with Update, which preserves slots: when a path
// leaves, only its slots change hands; when weights change, slots move
// only from paths above their new share to paths below it. The shares
// are exactly Maglev's for the same paths and weights.
//
// # Established flows
//
// The kernel's flow table keeps a flow on its path while the path is up.
// Moves says which established flows to move: a flow on a Down (or
// removed) path moves at once — the kernel already re-picks those once
// the paths map says down; a flow on an alive path that left the table
// that decides for it (failover to passive, failback to active, an
// unacceptable active/active path) moves gradually, at most MoveShare of
// them per MoveInterval, in an order fixed by their hashes, each to the
// path its hash gives in the table. Flows on paths still in the table
// stay: an active/active weight change or a path rejoining moves no
// established flow.
//
// # Defaults and timers
//
//	Config field   default  why
//	EvalInterval   10 s     the product's evaluation period; also the probe window
//	FailBad/FailOf 2 of 3   one bad window (a burst of a few seconds) is not enough;
//	                        a lasting impairment fails in 10-20 s; intermittent ones
//	                        (bad every other window) are caught too
//	RecoverGood    3        recovering must be more certain than failing: a
//	                        premature failback costs two migrations
//	Recover        0.8      hysteresis: a metric hovering at its threshold does not
//	                        alternate bad and good
//	MinLost        2        33 probes per window: one lost probe is 3.03 % and says
//	                        nothing about a 3 % loss rate
//	HoldDown       10 s     the product waits at least 10 s before falling back
//	MoveShare      20 %     per MoveInterval (1 s): a migration takes 5 s, gradual
//	                        enough not to burst onto the other link, short enough
//	                        that flows do not linger on a bad one
//	MinSamples     5        below that the window says nothing
//
// Timeline with the defaults (probe interval 300 ms, window 10 s):
//
//   - blackhole: the prober's Down within 0.65-0.95 s (+ RTT/2); the
//     path's flows move at once, new flows go to the next path at once;
//   - quality: fail at the 2nd bad evaluation, 10-20 s after the
//     impairment starts; new flows move at once, existing ones over 5 s;
//   - return: the window is clean 11 s after the last bad probe (10 s +
//     the 1 s probe timeout), the path is Up after 3 good evaluations
//     (20-30 s later), and takes flows after 10 s more of hold-down: 41 to
//     51 s after the impairment ends, then the flows return over 5 s.
//     A failback therefore comes at least (RecoverGood-1) x EvalInterval +
//     HoldDown = 30 s after the failover, which bounds failovers to one
//     per 30 s, whatever the impairment does (TestPeriodicOutage).
//
// # Events
//
// Events are debounced by construction: alerts and clears come from the
// N-of-M counters above; PathFailover and PathFailback are published only
// when a site's table-0 set of paths changes: a failover when a path left
// it because it became unacceptable, went down or was removed; a failback
// when a path that had been unacceptable takes flows again: after its
// hold-down, or at once as a stopgap when nothing better is alive. Paths coming up for the first time, a passive path
// standing in until the active one first connects, or a standby path
// failing are no failover. PathStateChange reports every health change,
// for the kernel's paths map and metrics.
package pathsel
