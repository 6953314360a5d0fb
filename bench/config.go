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
	// GoNfqueue is go-nfqueue's own callback API accepting everything:
	// what the engine would cost on the library's per-packet path.
	GoNfqueue Mode = "go-nfqueue"
)

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
}

// Result is one measured cell.
type Result struct {
	Round    int
	Mode     Mode
	Workload Workload
	Value    float64
}

// Report holds every cell of a run.
type Report struct {
	Config  Config
	Results []Result
}
