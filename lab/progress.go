package lab

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/closeduel/closeduel/analysis"
)

// progress draws the live status line while a run goes on. It draws only on
// a terminal and says nothing otherwise.
type progress struct {
	w     io.Writer
	start time.Time
	plan  time.Duration // schedule + quiet, until the client stops
	quiet time.Duration

	mu      sync.Mutex
	ok      int
	failed  int
	stopped time.Time
	// stats returns the analysis' figures so far (segments, connections,
	// duels) and the middlebox's verdicts by action (nil without one).
	stats func() (live analysis.LiveCounts, verdicts map[string]uint64)
}

func (p *progress) request(ok bool) {
	p.mu.Lock()
	if ok {
		p.ok++
	} else {
		p.failed++
	}
	p.mu.Unlock()
}

func (p *progress) stop(at time.Time) {
	p.mu.Lock()
	p.stopped = at
	p.mu.Unlock()
}

// line renders the status at now.
func (p *progress) line(now time.Time) string {
	p.mu.Lock()
	ok, failed, stopped := p.ok, p.failed, p.stopped
	p.mu.Unlock()
	end := p.start.Add(p.plan)
	phase := "client running"
	if !stopped.IsZero() {
		end = stopped.Add(p.quiet)
		phase = "watching"
	}
	remaining := max(end.Sub(now), 0)
	live, verdicts := p.stats()
	var v []string
	for action, n := range verdicts {
		v = append(v, fmt.Sprintf("%s %d", action, n))
	}
	sort.Strings(v)
	vs := "no middlebox"
	if verdicts != nil {
		vs = "verdicts: " + strings.Join(v, ", ")
		if len(v) == 0 {
			vs = "verdicts: none yet"
		}
	}
	duels := fmt.Sprintf("duels %d", live.Duels)
	if live.OngoingDuels > 0 {
		duels += fmt.Sprintf(" (%d ongoing)", live.OngoingDuels)
	}
	return fmt.Sprintf("%5.1fs elapsed, %5.1fs left (%s) | requests %d ok %d failed | segments %d | %s | connections %d | %s",
		now.Sub(p.start).Seconds(), remaining.Seconds(), phase, ok, failed, live.Segments, vs, live.Connections, duels)
}

// run redraws the line until ctx is done, then ends it with a newline.
func (p *progress) run(ctx context.Context) {
	if p.w == nil {
		return
	}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(p.w, "\r\033[K%s\n", p.line(time.Now()))
			return
		case now := <-t.C:
			fmt.Fprintf(p.w, "\r\033[K%s", p.line(now))
		}
	}
}
