package mitigate

import (
	"time"

	"github.com/closeduel/closeduel/segment"
	"github.com/closeduel/closeduel/tcpstate"
)

// duel-quench
//
// Mechanism: any ping-pong on a tuple after its close that no targeted fix
// ends. A segment is out of connection, as the analysis has it
// (analysis/DEFINITIONS.md, Duels), when its incarnation had closed before
// it and it opens no new one, or when the tuple is in conflict (the
// tracker's Held: a stale ACK answered the opener's SYN). A duel is under
// way once the out-of-connection segments on a tuple have changed
// direction twice with no quiet spell longer than the analysis's longest
// retransmission back-off (120 s).
//
// Fix: after QuenchTurns turns, the tuple's out-of-connection segments are
// dropped for QuenchFor; every drop is in the verdict log under the
// mitigation's name. It shortens what the device must answer; it does not
// make either end's state right, so it is the last resort. (Refusing a
// quenched client SYN in the device's name ends the duel sooner, but
// frees the client's port at once, which it then picks again for its next
// connection into the same held tuple: measured, failed requests rose.)

// duelGap is the analysis's longest retransmission back-off
// (--max-backoff): a quieter tuple starts afresh.
const duelGap = 120 * time.Second

// quench is one tuple's duel state.
type quench struct {
	tuple   segment.Tuple
	lastDir int8
	turns   int
	last    time.Time
	until   time.Time
}

func (m *Mitigator) quench(seg *segment.Segment, res *tcpstate.Result, side Side, st *slotState, now time.Time) Outcome {
	q := &st.quench
	if q.tuple != res.Conn.Tuple {
		*q = quench{tuple: res.Conn.Tuple, lastDir: -1}
	}
	if !outOfConnection(res) {
		if seg.Flags&segment.SYN == 0 {
			*q = quench{tuple: q.tuple, lastDir: -1}
		}
		return Outcome{}
	}
	if q.lastDir >= 0 && now.Sub(q.last) > duelGap {
		*q = quench{tuple: q.tuple, lastDir: -1}
	}
	dir := int8(res.From)
	if q.lastDir >= 0 && q.lastDir != dir {
		q.turns++
	}
	q.lastDir, q.last = dir, now
	if !q.until.IsZero() && !now.Before(q.until) {
		// The quench ran out: count afresh.
		*q = quench{tuple: q.tuple, lastDir: dir, last: now}
		return Outcome{}
	}
	if q.turns < m.cfg.QuenchTurns {
		return Outcome{}
	}
	if q.until.IsZero() {
		q.until = now.Add(m.cfg.QuenchFor)
		m.stats.Quenched.Add(1)
	}
	m.stats.QuenchDrops.Add(1)
	return Outcome{By: DuelQuench, Acted: true, Drop: true}
}

// outOfConnection reports whether the segment of res is out of its
// connection, as the analysis has it: its incarnation had closed (an
// endpoint reached TIME-WAIT or CLOSED) before it and it opens no new one,
// or the tuple is in conflict (a stale ACK answered its SYN).
func outOfConnection(res *tcpstate.Result) bool {
	c := res.Conn
	if c.Held {
		return true
	}
	return !res.Events.Has(tcpstate.NewIncarnation) && !c.ClosedAt.IsZero() && c.ClosedAt.Before(res.At)
}
