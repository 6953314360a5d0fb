package metrics

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/closeduel/closeduel/analysis"
	"github.com/closeduel/closeduel/internal/ring"
	"github.com/closeduel/closeduel/lab"
	"github.com/closeduel/closeduel/nfq"
)

// Live feeds an analysis.Analyzer with the engine's events, off the
// engine's goroutine: Record copies each TCP event into a bounded ring
// (no lock, no allocation) and Run feeds the Analyzer from it. Events that
// find the ring full are counted (Lost) and left out of the live figures;
// the verdict log still has them.
type Live struct {
	ring *ring.Ring[analysis.Event]
	lost atomic.Uint64

	mu sync.Mutex
	an *analysis.Analyzer
}

// NewLive returns a Live whose ring holds size events (default 16384) and
// whose Analyzer has cfg's parameters.
func NewLive(size int, cfg analysis.Config) *Live {
	if size <= 0 {
		size = 16384
	}
	return &Live{ring: ring.New[analysis.Event](size), an: analysis.NewAnalyzer(cfg)}
}

// Record implements nfq.Recorder.
func (l *Live) Record(ev *nfq.Event) {
	if !ev.TCP {
		return
	}
	s, pos := l.ring.Reserve()
	if s == nil {
		l.lost.Add(1)
		return
	}
	s.Value = analysis.Event{Kind: analysis.EventPacket, Time: ev.Left.UnixNano(), Seg: ev.Seg,
		Note: lab.NoteOf(ev), Counted: true}
	s.Publish(pos)
}

// Run feeds the Analyzer every interval (default 100 ms) until ctx is
// done, then once more.
func (l *Live) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			l.Drain()
			return
		case <-t.C:
			l.Drain()
		}
	}
}

// Drain feeds the Analyzer what the ring holds now. Only one goroutine
// may drain at a time (Run's, or a caller's after Run returned).
func (l *Live) Drain() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for s := l.ring.Peek(); s != nil; s = l.ring.Peek() {
		l.an.Add(&s.Value)
		l.ring.Release(s)
	}
}

// Counts returns the Analyzer's figures so far.
func (l *Live) Counts() analysis.LiveCounts {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.an.LiveCounts()
}

// Lost returns how many events found the ring full.
func (l *Live) Lost() uint64 { return l.lost.Load() }
