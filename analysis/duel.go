package analysis

import (
	"strings"
	"time"

	"github.com/closeduel/closeduel/segment"
)

// Cause says what set the stage for a duel. Its values are the JSON
// words.
type Cause string

// Duel causes; DEFINITIONS.md defines each.
const (
	CauseHeldTuple Cause = "syn-to-held-tuple" // a SYN met a stale ACK
	CauseAfterRST  Cause = "after-rst"         // the peer went on after a valid RST
	CauseAfterFIN  Cause = "after-fin"         // segments after both FINs were acknowledged
	// CauseStalledClose: both sides had sent their FIN, the close never
	// completed and a side retransmitted.
	CauseStalledClose Cause = "stalled-close"
)

// String returns the word.
func (c Cause) String() string { return string(c) }

// minTurns is the number of direction changes that make a run of
// out-of-connection segments a duel: A, B, A.
const minTurns = 2

// duelRun collects the out-of-connection segments of one tuple until it
// ends; it is reported as a Duel when it has at least minTurns turns.
type duelRun struct {
	orig       segment.Tuple
	connID     int
	start, end int64
	cause      Cause
	trigger    SegmentRef
	counts     [2]FlagCounts
	segments   int
	turns      int
	dropped    int
	lastDir    int
	verdicts   VerdictCounts
	ladder     []SegmentRef
	omitted    int
	qualified  bool
	// settled: after the last segment neither stack sends by itself.
	settled bool
}

func newRun(c *conn, cause Cause, t int64) *duelRun {
	return &duelRun{orig: c.orig, connID: c.id, start: t, end: t, cause: cause, lastDir: -1}
}

func (r *duelRun) dir(seg *segment.Segment) int {
	if seg.Src == r.orig.Src && seg.Dst == r.orig.Dst {
		return 0
	}
	return 1
}

// add counts one segment of the run.
func (r *duelRun) add(seg *segment.Segment, note *Note, t int64) {
	di := r.dir(seg)
	ref := segmentRef(seg, note, di, t)
	if r.segments == 0 {
		r.trigger = ref
	}
	r.segments++
	if t > r.end {
		r.end = t
	}
	if r.lastDir >= 0 && r.lastDir != di {
		r.turns++
	}
	r.lastDir = di
	countFlags(&r.counts[di], seg)
	if note.Drop {
		r.dropped++
	}
	if note.Kind != NoteNone {
		r.verdicts.add(note)
	}
	if len(r.ladder) < LadderMax {
		r.ladder = append(r.ladder, ref)
	} else {
		r.omitted++
	}
}

func countFlags(fc *FlagCounts, seg *segment.Segment) {
	f := seg.Flags
	switch {
	case f&segment.RST != 0:
		fc.RST++
	case f.Has(segment.SYN | segment.ACK):
		fc.SYNACK++
	case f&segment.SYN != 0:
		fc.SYN++
	case f&segment.FIN != 0:
		fc.FIN++
	case seg.PayloadLen > 0:
		fc.Data++
	default:
		fc.ACK++
	}
}

var dirNames = [2]string{"orig>resp", "resp>orig"}

func segmentRef(seg *segment.Segment, note *Note, di int, t int64) SegmentRef {
	ref := SegmentRef{
		Time:    time.Unix(0, t).UTC(),
		Dir:     dirNames[di],
		Flags:   seg.Flags.String(),
		Seq:     uint32(seg.Seq),
		Ack:     uint32(seg.Ack),
		Len:     seg.PayloadLen,
		Dropped: note.Drop,
	}
	plainPass := note.Kind == NoteVerdict && !note.Drop && note.Rule == "" && (note.Action == "" || note.Action == "pass")
	if note.Kind != NoteNone && !plainPass {
		var b strings.Builder
		b.WriteString(note.Kind.String())
		if note.Kind == NoteVerdict {
			b.Reset()
			if note.Drop {
				b.WriteString("drop")
			} else {
				b.WriteString("accept")
			}
		}
		if note.Action != "" {
			b.WriteString(" action=" + note.Action)
		}
		if note.Rule != "" {
			b.WriteString(" rule=" + note.Rule)
		}
		ref.Note = b.String()
	}
	return ref
}

// duel renders a finished run.
func (r *duelRun) duel(ongoing bool, run *RunInfo) Duel {
	d := Duel{
		Orig:          r.orig.Src.String(),
		Resp:          r.orig.Dst.String(),
		Connection:    r.connID,
		Start:         time.Unix(0, r.start).UTC(),
		End:           time.Unix(0, r.end).UTC(),
		Duration:      secondsOf(r.end - r.start),
		Ongoing:       ongoing,
		Cause:         r.cause,
		Segments:      r.segments,
		ByDirection:   r.counts,
		Turns:         r.turns,
		Dropped:       r.dropped,
		Trigger:       r.trigger,
		Verdicts:      r.verdicts,
		Ladder:        r.ladder,
		LadderOmitted: r.omitted,
	}
	if run != nil && !run.WorkloadEnd.IsZero() {
		after := r.end > run.WorkloadEnd.UnixNano()
		d.AfterWorkload = &after
		if after {
			d.AfterWorkloadSeconds = secondsOf(r.end - max(r.start, run.WorkloadEnd.UnixNano()))
		}
	}
	return d
}
