package bench

import (
	"io"
	"time"
)

// Mode names one way of putting the bridge's traffic through (or past)
// user space.
type Mode string

// The modes measured.
const (
	Kernel    Mode = "kernel"    // the bridge alone, no queue: the limit
	CAnchor   Mode = "c-anchor"  // shared/anchors/nfq-c-pass.c
	Closeduel Mode = "closeduel" // closeduel run, observing
	// ClosedueLog is closeduel run writing the JSON log and the pcapng.
	ClosedueLog Mode = "closeduel+log"
	// CloseduelMetrics is closeduel run serving /metrics, with its live
	// analysis fed from every packet.
	CloseduelMetrics Mode = "closeduel+metrics"
	// ClosedueLogRT is ClosedueLog with the packet thread under
	// SCHED_FIFO (run --rt-priority 10).
	ClosedueLogRT Mode = "closeduel+log+rt"
	// ClosedueLogNoPoll is ClosedueLog with busy-polling off (run
	// --busy-poll 0): the packet thread sleeps between batches.
	ClosedueLogNoPoll Mode = "closeduel+log+nopoll"
	// ClosedueLog2Q is ClosedueLog spreading connections over two
	// queues (run --queues 2), one engine thread each.
	ClosedueLog2Q Mode = "closeduel+log+2q"
	// Closeduel20 is closeduel run with a 20-rule file that matches
	// nothing of the bench's traffic, writing the log and the pcapng.
	Closeduel20 Mode = "closeduel+20rules"
	// GoNfqueue is go-nfqueue's own callback API accepting everything:
	// what the engine would cost on the library's per-packet path.
	GoNfqueue Mode = "go-nfqueue"
)

// AllModes lists every mode in the order reports show them.
var AllModes = []Mode{Kernel, CAnchor, Closeduel, ClosedueLog, ClosedueLogNoPoll, ClosedueLogRT, ClosedueLog2Q, Closeduel20, CloseduelMetrics, GoNfqueue}

const queueNum = 9

// Config configures a run. Zero values take the defaults.
type Config struct {
	// Rounds is how many times every (mode, workload) cell is measured,
	// in a fresh random order each round; default 3.
	Rounds int
	// Duration is the length of one cell; default 3 s.
	Duration time.Duration
	// Workloads to measure; default all three.
	Workloads []Workload
	// Modes to measure; default kernel, c-anchor, closeduel.
	Modes []Mode
	// AnchorSource is the C anchor's source; default
	// ../shared/anchors/nfq-c-pass.c from the repository root.
	AnchorSource string
	// Exe is the closeduel binary (default: this executable).
	Exe string
	// Seed orders the cells.
	Seed uint64
	// Progress receives a line per cell; nil prints nothing.
	Progress io.Writer
	// DelayRates are the packet rates (per second) at which the precision
	// of held packets' delays is measured, once per round each; none
	// skips it.
	DelayRates []int
}

// DelayAsked is the delay the precision measurement asks for.
const DelayAsked = 2 * time.Millisecond

// Result is one measured cell.
type Result struct {
	Round    int
	Mode     Mode
	Workload Workload
	Value    float64
	// P50, P99 are the round trip's percentiles in microseconds
	// (request/response only).
	P50, P99 float64
}

// DelayResult is one measurement of delay precision: closeduel delaying
// every data segment of a paced stream by DelayAsked.
type DelayResult struct {
	Round int
	// RT says the packet thread ran under SCHED_FIFO (--rt-priority).
	RT bool
	// Rate is the packet rate asked of the sender, Achieved the rate of
	// delayed segments the engine saw (TCP coalesces when its window is
	// full).
	Rate     int
	Achieved float64
	// N is the number of delayed segments; P50, P99 and Max are the
	// percentiles of measured minus asked delay, in microseconds, the
	// measured delay being the engine's time from receipt to verdict as
	// the verdict log records it.
	N             int
	P50, P99, Max float64
}

// Report holds every cell of a run.
type Report struct {
	Config  Config
	Results []Result
	Delays  []DelayResult
}
