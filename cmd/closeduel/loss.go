package main

import (
	"fmt"
	"log/slog"

	"github.com/closeduel/closeduel/bridgehook"
	"github.com/closeduel/closeduel/nfq"
	"github.com/closeduel/closeduel/verdictlog"
)

// lossWatch says, while a run goes on, when something is being lost or
// refused: log records (ring full, failed writes), holds refused for want
// of a slot, packets the kernel queue could not take. Each check warns
// once per growth, with the totals so far.
type lossWatch struct {
	log  *slog.Logger
	vlog *verdictlog.Writer // nil when not logging
	hook *bridgehook.Hook   // nil with --hook none
	last lossCounts
}

type lossCounts struct {
	logLost, logFailed, holdRefused, kernelDropped, failOpen uint64
}

// check compares the counters with the last check and warns about growth.
// It reads the hook's counter of matched packets before it takes the
// engine's snapshot (stats): every packet matched by then has reached the
// engine or waits in the queue, so only packets let past a full queue make
// the difference. (Read the other way round, the packets matched while
// iptables prints its counters, about 20 ms, looked let past: at 20,000
// packets/s, hundreds of false warnings.)
func (w *lossWatch) check(stats func() nfq.Snapshot) {
	var m uint64
	var mErr error
	if w.hook != nil {
		m, mErr = w.hook.Matched()
	}
	st := stats()
	var now lossCounts
	now.holdRefused = st.HoldOverflow
	now.kernelDropped = st.KernelQueueDropped + st.KernelUserDropped
	if w.vlog != nil {
		ls := w.vlog.Stats()
		now.logLost, now.logFailed = ls.Lost, ls.Failed
		if now.logLost > w.last.logLost || now.logFailed > w.last.logFailed {
			w.log.Warn(fmt.Sprintf("verdict log is losing records: %d lost (ring full), %d failed (write errors) so far", now.logLost, now.logFailed),
				"lost", now.logLost, "failed", now.logFailed, "err", ls.LastError)
		}
	}
	if now.holdRefused > w.last.holdRefused {
		w.log.Warn(fmt.Sprintf("hold table full: %d holds refused so far (those packets went on at once)", now.holdRefused),
			"refused", now.holdRefused)
	}
	if w.hook != nil {
		// Matched, less queued and waiting: let past a full queue. Read
		// at slightly different moments, so a few packets either way.
		if mErr == nil && m > st.Packets+st.KernelQueueTotal {
			now.failOpen = m - st.Packets - st.KernelQueueTotal
		}
		if now.failOpen > w.last.failOpen+16 {
			w.log.Warn(fmt.Sprintf("kernel queue full: about %d packets let past unqueued so far (fail-open: not decided, not logged)", now.failOpen),
				"fail_open", now.failOpen)
		} else {
			now.failOpen = w.last.failOpen
		}
	}
	if now.kernelDropped > w.last.kernelDropped {
		w.log.Warn(fmt.Sprintf("kernel queue overflow: %d packets not queued so far (accepted unqueued: fail-open)", now.kernelDropped),
			"queue_dropped", st.KernelQueueDropped, "user_dropped", st.KernelUserDropped)
	}
	w.last = now
}

// logStatus describes the verdict log's counters for ctl status and the
// summary.
func logStatus(vlog *verdictlog.Writer) string {
	ls := vlog.Stats()
	s := fmt.Sprintf("written %d, lost %d (ring full), failed %d (write errors)", ls.Written, ls.Lost, ls.Failed)
	if ls.LastError != "" {
		s += "; last error: " + ls.LastError
	}
	return s
}
