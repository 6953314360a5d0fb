package lab

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/closeduel/closeduel/analysis"
	"github.com/closeduel/closeduel/nfq"
	"github.com/closeduel/closeduel/segment"
	"github.com/gopacket/gopacket/layers"
)

// Summary follows the bench's segments while a run goes on. It feeds them
// to an analysis.Analyzer, which alone says what a connection, a duel, an
// ignored RST and a TIME_WAIT reuse are (analysis/DEFINITIONS.md), and
// counts what only the lab knows: the segments after the client stopped.
//
// With the inline engine it is fed the engine's own records (Record):
// the segments of capture.pcapng with their verdicts, so its figures are
// those of the analysis of the run directory. Without one it is fed the
// lab's capture (AddFrame), which is then capture.pcapng. It is safe for
// concurrent use.
type Summary struct {
	client, device netip.Addr

	mu       sync.Mutex
	dec      *segment.Decoder
	seg      segment.Segment
	ev       analysis.Event
	an       *analysis.Analyzer
	report   *analysis.Report
	stop     time.Time
	after    int
	lastSeen time.Time
	// syns are the times the client's first SYNs (not retransmissions)
	// left the bench toward the device, in order; synSeen dedups them.
	syns    []time.Time
	synSeen map[synKey]bool
}

type synKey struct {
	port uint16
	seq  segment.Seq
}

// maxSYNs bounds the SYN times a Summary keeps.
const maxSYNs = 100000

// NewSummary returns a Summary for a bench whose client and device have
// these addresses, the device running kind's stack; segments between other
// hosts are left out.
func NewSummary(client, device netip.Addr, kind DeviceKind) (*Summary, error) {
	dec, err := segment.NewDecoder(layers.LinkTypeEthernet)
	if err != nil {
		return nil, fmt.Errorf("lab: summary: %w", err)
	}
	// The roles' stacks, as the run directory's analysis reads them from
	// run.yaml: one TCP model for both.
	run := &analysis.RunInfo{Stacks: map[string]string{client.String(): ClientStack.String(), device.String(): kind.Stack().String()}}
	return &Summary{client: client, device: device, dec: dec, an: analysis.NewAnalyzer(analysis.Config{Run: run})}, nil
}

// SetStop records when the client stopped; segments after it are counted
// apart.
func (s *Summary) SetStop(t time.Time) {
	s.mu.Lock()
	s.stop = t
	s.mu.Unlock()
}

// Stop returns when the client stopped (zero until SetStop).
func (s *Summary) Stop() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stop
}

// AddFrame adds one Ethernet frame the lab's capture saw at t.
func (s *Summary) AddFrame(t time.Time, frame []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dec.Decode(frame, &s.seg) != nil {
		return
	}
	s.add(t, &s.seg, analysis.Note{})
}

// AddSegment adds one segment seen at t with closeduel's note on it (the
// zero Note for a plain capture).
func (s *Summary) AddSegment(t time.Time, seg *segment.Segment, note analysis.Note) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.add(t, seg, note)
}

// Record implements nfq.Recorder: it adds the segment of one engine
// event, at the time it left the engine, with the note the verdict log's
// pcapng comment gives it (verdictlog), so that it reads what the
// analysis of capture.pcapng reads. It copies what it keeps.
func (s *Summary) Record(ev *nfq.Event) {
	if !ev.TCP {
		return
	}
	s.AddSegment(ev.Left, &ev.Seg, NoteOf(ev))
}

// NoteOf returns the analysis note of an engine event, as the analysis
// reads it back from the event's pcapng comment.
func NoteOf(ev *nfq.Event) analysis.Note {
	var n analysis.Note
	switch ev.Kind {
	case nfq.EventVerdict:
		n.Kind, n.Drop, n.Action = analysis.NoteVerdict, ev.Verdict == nfq.Drop, "pass"
		if d := ev.Decision; d != nil && d.Action != "" {
			n.Action = d.Action
		}
	case nfq.EventDuplicate:
		n.Kind, n.Action = analysis.NoteDuplicate, "duplicate"
	case nfq.EventInjected:
		n.Kind, n.Action = analysis.NoteInjected, "inject"
	default:
		return n
	}
	if d := ev.Decision; d != nil {
		n.Rule = d.Rule
	}
	return n
}

// add feeds one segment; s.mu is held.
func (s *Summary) add(t time.Time, seg *segment.Segment, note analysis.Note) {
	if s.report != nil {
		return // closed
	}
	src, dst := seg.Src.Addr(), seg.Dst.Addr()
	if !(src == s.client && dst == s.device) && !(src == s.device && dst == s.client) {
		return
	}
	if !s.stop.IsZero() && t.After(s.stop) {
		s.after++
		s.lastSeen = t
	}
	if src == s.client && seg.Flags&(segment.SYN|segment.ACK|segment.RST) == segment.SYN && !note.Drop && len(s.syns) < maxSYNs {
		k := synKey{seg.Src.Port(), seg.Seq}
		if s.synSeen == nil {
			s.synSeen = map[synKey]bool{}
		}
		if !s.synSeen[k] {
			s.synSeen[k] = true
			s.syns = append(s.syns, t)
		}
	}
	s.ev = analysis.Event{Kind: analysis.EventPacket, Time: t.UnixNano(), Seg: *seg, Note: note,
		Counted: note.Kind != analysis.NoteNone}
	s.an.Add(&s.ev)
}

// Live returns the analysis' figures so far.
func (s *Summary) Live() analysis.LiveCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.report != nil {
		t := &s.report.Totals
		return analysis.LiveCounts{Segments: t.Segments, Connections: t.Connections, Duels: t.Duels,
			IgnoredRSTs: t.IgnoredRSTs, TimeWaitReuses: t.TimeWaitReuses}
	}
	return s.an.LiveCounts()
}

// AfterStop returns how many segments came after the client stopped and
// how long after it the last of them came.
func (s *Summary) AfterStop() (segments int, last time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.after == 0 {
		return 0, 0
	}
	return s.after, s.lastSeen.Sub(s.stop)
}

// Close ends the analysis with the run's metadata (nil when there is
// none) and returns its report; later segments are ignored and later
// calls return the same report.
func (s *Summary) Close(run *analysis.RunInfo) *analysis.Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.report == nil {
		s.an.SetRun(run)
		s.report = s.an.Finish()
	}
	return s.report
}

// WireGapError compares the client's first SYNs as they reached the
// device with the schedule: the largest difference between a SYN's offset
// from the first SYN and its request's offset from the first request. It
// says how faithfully the bench delivered the workload's rhythm (the
// client's own start errors do not see a bench that holds segments back).
// ok is false when the SYNs do not pair with the requests one to one.
func (s *Summary) WireGapError(offsets []time.Duration) (worst time.Duration, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.syns) != len(offsets) || len(offsets) == 0 {
		return 0, false
	}
	for i, t := range s.syns {
		d := t.Sub(s.syns[0]) - (offsets[i] - offsets[0])
		worst = max(worst, d, -d)
	}
	return worst, true
}
