package analysis

import (
	"time"

	"github.com/closeduel/closeduel/tcpstate"
)

// workloadGuess infers the workload's end from the segments, for inputs
// without run metadata: the start of the client's last new connection,
// that is of the last incarnation opened by a SYN.
type workloadGuess struct {
	last int64
}

// opened notes an incarnation's first segment.
func (w *workloadGuess) opened(_ *conn, tc *tcpstate.Conn, t int64) {
	if tc.Opener >= 0 && t > w.last {
		w.last = t
	}
}

// judge sets the inferred end in r and judges its duels against it, when
// r has no run metadata that says when the workload stopped.
func (w *workloadGuess) judge(r *Report) {
	if (r.Run != nil && !r.Run.WorkloadEnd.IsZero()) || w.last == 0 {
		return
	}
	r.InferredWorkloadEnd = time.Unix(0, w.last).UTC()
	for i := range r.Duels {
		d := &r.Duels[i]
		start, end := d.Start.UnixNano(), d.End.UnixNano()
		after := end > w.last
		d.AfterWorkload = &after
		if after {
			d.AfterWorkloadSeconds = secondsOf(end - max(start, w.last))
			r.Totals.DuelsAfterWorkload++
		}
	}
}
