package analysis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"time"

	"github.com/closeduel/closeduel/segment"
	"github.com/closeduel/closeduel/tcpstate"
)

// Config sets the parameters of the definitions. The zero value means the
// defaults.
type Config struct {
	// MaxBackoff is the longest a stack that still holds a connection
	// waits before it sends again (its retransmission back-off; default
	// 120 s, Linux's TCP_RTO_MAX, above lwIP's 96 s): a duel whose tuple
	// stays quiet longer has ended.
	MaxBackoff time.Duration
	// IdleTimeout ends an incarnation that is not closed but has been
	// quiet this long (default 5 min), as unfinished or half-open, unless
	// an endpoint holds it open (ESTABLISHED, CLOSE-WAIT): the stacks keep
	// those however quiet, and so does the analysis.
	IdleTimeout time.Duration
	// MSL is the maximum segment lifetime the tracker assumes (default
	// 60 s): TIME-WAIT lasts 2·MSL unless TimeWait says otherwise for the
	// stack, and a closed tuple is remembered 2·MSL after its last
	// segment.
	MSL time.Duration
	// TimeWait is how long an endpoint of each stack holds TIME-WAIT
	// (zero: 2·MSL, Linux 60 s).
	TimeWait [tcpstate.NumStacks]time.Duration
	// Stack says which stack the endpoint at an address runs (nil: the
	// run metadata's roles, Run.Stacks, else RFC 9293 everywhere,
	// TIME-WAIT 2·MSL).
	Stack func(netip.AddrPort) tcpstate.Stack
	// MaxTuples bounds the 4-tuples the analysis keeps state for (default
	// 1<<20); when more are live, the least recently active is forgotten
	// early, counted in Totals.EvictedTuples.
	MaxTuples int
	// MaxConnections bounds the rows of Report.Connections (default
	// 5000); MaxDuels bounds Report.Duels (default 1000).
	MaxConnections, MaxDuels int
	// Run is the lab run's metadata, when known.
	Run *RunInfo
}

// DefaultMaxTuples is Config.MaxTuples's default.
const DefaultMaxTuples = 1 << 20

func (c *Config) fill() {
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 120 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 5 * time.Minute
	}
	if c.MSL <= 0 {
		c.MSL = tcpstate.DefaultMSL
	}
	if c.MaxTuples <= 0 {
		c.MaxTuples = DefaultMaxTuples
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = 5000
	}
	if c.MaxDuels <= 0 {
		c.MaxDuels = 1000
	}
}

// tupleState is what the analysis adds to the tracker's state of one
// 4-tuple: the incarnation's report layers and the duel running on it.
type tupleState struct {
	cur *conn
	run *duelRun
}

// Analyzer turns a time-ordered stream of events into a Report. It is a
// pure state machine: it does no I/O and reads no clock. The TCP model is
// package tcpstate's tracker, fed every segment (sent, then delivered
// unless closeduel dropped it); the Analyzer builds its incarnations,
// Wireshark's retransmission rules, histories and duels on it. It is not
// safe for concurrent use.
type Analyzer struct {
	cfg       Config
	backoff   int64
	tr        *tcpstate.Tracker
	tuples    []tupleState // by tracker slot
	nextID    int
	first     int64
	last      int64
	durations quantiles
	report    Report
	infer     workloadGuess
	// stacks are the run's roles' stacks the tracker was given.
	stacks map[string]string
	// notedPackets is set once a packet came with closeduel's note.
	notedPackets bool
	notable      int // rows kept past MaxConnections
	// running counts the runs that are duels already but not ended;
	// ignored and twReuses count over finished and live incarnations
	// (LiveCounts).
	running, ignored, twReuses int
}

// NewAnalyzer returns an Analyzer with cfg's parameters.
func NewAnalyzer(cfg Config) *Analyzer {
	cfg.fill()
	var stacks map[string]string
	if cfg.Stack == nil && cfg.Run != nil {
		cfg.Stack, stacks = cfg.Run.stackOf(), cfg.Run.Stacks
	}
	a := &Analyzer{cfg: cfg, backoff: int64(cfg.MaxBackoff), stacks: stacks}
	a.tr = tcpstate.New(tcpstate.Config{
		MaxConns: cfg.MaxTuples, Idle: cfg.IdleTimeout, MSL: cfg.MSL, TimeWait: cfg.TimeWait,
		Stack: cfg.Stack, Grow: true, OnForget: a.forget,
	})
	tc := a.tr.Config()
	a.report = Report{
		Schema: SchemaVersion,
		Run:    cfg.Run,
		Settings: Settings{
			MaxBackoff:     secondsOf(a.backoff),
			IdleTimeout:    secondsOf(int64(cfg.IdleTimeout)),
			MSL:            secondsOf(int64(tc.MSL)),
			TimeWait:       secondsOf(int64(tc.TimeWait[tcpstate.RFC9293])),
			MaxTuples:      cfg.MaxTuples,
			MaxConnections: cfg.MaxConnections,
			MaxDuels:       cfg.MaxDuels,
		},
		Connections: []Connection{},
		Duels:       []Duel{},
	}
	a.report.Totals.Closes = map[string]int{}
	for k := range numCloseKinds {
		a.report.Totals.Closes[k.String()] = 0
	}
	return a
}

// Add feeds one event. Events should come in time order; small
// disorder (as between several inputs' clocks) is tolerated.
func (a *Analyzer) Add(e *Event) {
	if e.Time > a.last {
		a.last = e.Time
	}
	if a.first == 0 || e.Time < a.first {
		a.first = e.Time
	}
	t := &a.report.Totals
	if e.Kind == EventPacket && e.Note.Kind != NoteNone {
		a.notedPackets = true
	}
	switch kind := e.Note.Kind; {
	case !e.Counted:
	case kind == NoteVerdict:
		t.Verdicts++
		if e.Note.Drop {
			t.Drops++
		}
	case kind == NoteInjected:
		t.Injected++
	case kind == NoteDuplicate:
		t.Duplicates++
	}
	if e.Kind == EventVerdict {
		// The packets' own notes, when they have them, are the duels'
		// verdicts; a log beside a plain capture is matched by time.
		if a.notedPackets {
			return
		}
		if _, slot := a.tr.Lookup(e.Seg.Tuple()); slot >= 0 && slot < len(a.tuples) {
			if r := a.tuples[slot].run; r != nil && e.Time >= r.start {
				r.verdicts.add(&e.Note)
			}
		}
		return
	}
	a.packet(e)
}

// forget is the tracker's OnForget: the analysis finishes what it held on
// the slot.
func (a *Analyzer) forget(_ *tcpstate.Conn, slot int, why tcpstate.Forget) {
	if slot >= len(a.tuples) {
		return
	}
	ts := &a.tuples[slot]
	if why == tcpstate.Evicted && (ts.cur != nil || ts.run != nil) {
		a.report.Totals.EvictedTuples++
	}
	if ts.run != nil {
		a.endRun(ts, false)
	}
	if ts.cur != nil {
		a.finish(ts.cur)
	}
	*ts = tupleState{}
}

func (a *Analyzer) packet(e *Event) {
	seg := &e.Seg
	t := &a.report.Totals
	t.Segments++
	if seg.Flags&segment.RST != 0 {
		t.RSTs++
	}
	now := time.Unix(0, e.Time)
	var tc *tcpstate.Conn
	var slot, from int
	var ev tcpstate.Event
	var wasClosed bool
	if e.Note.Kind == NoteInjected {
		if tc, _ = a.tr.Lookup(seg.Tuple()); tc != nil {
			wasClosed = !tc.ClosedAt.IsZero()
		}
	}
	injected := tc != nil && a.tr.Forged(seg, now)
	if injected {
		// A segment closeduel crafted says nothing about the endpoint it
		// names as its sender; its receiver takes it.
		tc, slot = a.tr.Lookup(seg.Tuple())
		from = tc.End(seg.Src)
	} else {
		res := a.tr.Sent(seg, now)
		tc, slot, from, ev, wasClosed = res.Conn, res.Slot, res.From, res.Events, res.WasClosed
	}
	// Whether the receiver would take an RST is asked before it arrives.
	acceptable := seg.Flags&segment.RST != 0 && tc.Acceptable(1-from, seg)
	if !injected && !e.Note.Drop {
		a.tr.Deliver(seg, tc.ID, now)
	}
	for slot >= len(a.tuples) {
		a.tuples = append(a.tuples, make([]tupleState, a.tr.Room()-len(a.tuples))...)
	}
	ts := &a.tuples[slot]
	isSYN := seg.Flags&(segment.SYN|segment.ACK) == segment.SYN
	c := ts.cur
	if c != nil && c.tid != tc.ID {
		a.finish(c)
		c = nil
	}
	if c == nil {
		a.nextID++
		c = newConn(a.nextID, tc, seg, e.Time)
		ts.cur = c
		a.infer.opened(c, tc, e.Time)
	}
	di := c.dir(seg)
	// Whether this is its sender's first acknowledgment of the other
	// side's FIN (before update notes it).
	firstFinAck := seg.Flags&segment.ACK != 0 && !c.d[di].finAckSent && c.d[1-di].finSeen &&
		!seg.Ack.LessThan(c.d[1-di].finEnd)
	wasConflict := c.conflict
	wasIgnored, wasReuse := c.ignoredRSTs, c.twReuse
	retrans := c.update(di, seg, &e.Note, e.Time, tc, acceptable)
	stale := ev&tcpstate.StaleAck != 0
	if wasClosed && c.finalAck == from+1 {
		// The acknowledgment of the FIN that put its sender in
		// TIME-WAIT is the last step of the close, not after it.
		c.finalAck = 0
		if firstFinAck && !seg.Flags.Any(segment.SYN|segment.FIN|segment.RST) {
			wasClosed = false
		}
	}
	// A close both applications made that the stacks cannot finish: what
	// follows is out of connection (see DEFINITIONS.md), except the
	// segment that finally closes it.
	closesNow := c.closed == 0 && !tc.ClosedAt.IsZero()
	if c.closed == 0 && !c.stalled && retrans && tc.Ends[0].FinSent && tc.Ends[1].FinSent {
		c.stalled = c.stallRetx[0] && c.stallRetx[1] && !closesNow
		c.stallRetx[di] = true
	}
	stalled := c.stalled && c.closed == 0 && !closesNow
	if closesNow {
		c.closed, c.closeByRST = a.tr.Time(tc.ClosedAt).UnixNano(), seg.Flags&segment.RST != 0
		if e := int(tc.ClosedEnd); !c.closeByRST && tc.Ends[e].State == tcpstate.TimeWait {
			c.finalAck = e + 1
		}
	}
	a.ignored += c.ignoredRSTs - wasIgnored
	if c.twReuse && !wasReuse {
		a.twReuses++
	}
	var tok [4]byte
	n := token(&tok, seg, di, retrans, stale, &e.Note)
	c.addHistory(&tok, n)

	added := true
	switch {
	case c.conflict:
		if !wasConflict && c.lastSynTime > 0 {
			a.runAdd(ts, c, CauseHeldTuple, &c.lastSyn, &c.lastSynNote, c.lastSynTime, true)
		}
		a.runAdd(ts, c, CauseHeldTuple, seg, &e.Note, e.Time, false)
	case stalled:
		a.runAdd(ts, c, CauseStalledClose, seg, &e.Note, e.Time, false)
	case closesNow && c.stalled && ts.run != nil && ts.run.qualified:
		// The segment that ends a stalled close that had become a duel
		// (the RST of a stack that forgot it) is its last turn; one that
		// ends a mere recovery (the ACK of a retransmitted FIN) is not
		// out of connection.
		a.runAdd(ts, c, CauseStalledClose, seg, &e.Note, e.Time, false)
	case wasClosed:
		cause := CauseAfterFIN
		if c.closeByRST {
			cause = CauseAfterRST
		}
		a.runAdd(ts, c, cause, seg, &e.Note, e.Time, ev&tcpstate.NewIncarnation != 0)
	case ts.run != nil && !isSYN:
		a.endRun(ts, false)
		added = false
	default:
		added = false
	}
	if added && ts.run != nil {
		// The episode is over once neither stack sends by itself any
		// more: what comes next on the tuple is a new one.
		ts.run.settled = !tc.MaySend()
	}
}

// runAdd adds an out-of-connection segment to the tuple's run, starting
// one when there is none or the last one is over: it stayed quiet longer
// than the longest retransmission back-off, or it had settled (neither
// stack sends by itself any more, by the tracker) and fresh (a SYN opening
// a new incarnation) begins something new. Any other segment on a settled
// tuple shows a stack still acting on it, so the episode goes on.
func (a *Analyzer) runAdd(ts *tupleState, c *conn, cause Cause, seg *segment.Segment, note *Note, t int64, fresh bool) {
	if ts.run != nil && ((ts.run.settled && fresh) || uint64(t-ts.run.end) > uint64(a.backoff)) {
		a.endRun(ts, false)
	}
	if ts.run == nil {
		ts.run = newRun(c, cause, t)
	}
	r := ts.run
	r.add(seg, note, t)
	if r.turns >= minTurns {
		if !r.qualified {
			a.running++
		}
		r.qualified = true
		c.inDuel = true
	}
}

// endRun reports the tuple's run as a duel when it has enough turns.
func (a *Analyzer) endRun(ts *tupleState, ongoing bool) {
	r := ts.run
	ts.run = nil
	if r == nil || !r.qualified {
		return
	}
	a.running--
	t := &a.report.Totals
	t.Duels++
	t.DuelSegments += r.segments
	t.DuelSeconds += secondsOf(r.end - r.start)
	d := r.duel(ongoing, a.cfg.Run)
	if d.AfterWorkload != nil && *d.AfterWorkload {
		t.DuelsAfterWorkload++
	}
	if len(a.report.Duels) < a.cfg.MaxDuels {
		a.report.Duels = append(a.report.Duels, d)
	} else {
		a.report.DuelsOmitted++
	}
}

// finish reports an incarnation that is over.
func (a *Analyzer) finish(c *conn) {
	t := &a.report.Totals
	kind := c.closeKind()
	end := c.closed
	if end == 0 {
		end = c.last
	}
	row := Connection{
		ID:                 c.id,
		Orig:               c.orig.Src.String(),
		Resp:               c.orig.Dst.String(),
		Start:              time.Unix(0, c.start).UTC(),
		End:                time.Unix(0, c.last).UTC(),
		Duration:           secondsOf(end - c.start),
		Close:              kind,
		Closer:             c.closer,
		History:            c.history(),
		Segments:           [2]int{c.d[0].segs, c.d[1].segs},
		Bytes:              [2]int{c.d[0].payload, c.d[1].payload},
		Retransmissions:    c.retrans,
		SYNRetransmissions: c.synRetrans,
		FINRetransmissions: c.finRetrans,
		RSTs:               c.rsts,
		IgnoredRSTs:        c.ignoredRSTs,
		TimeWaitReuse:      c.twReuse,
		Established:        c.synAcked,
		Failed:             c.failed(),
	}
	if c.closed != 0 {
		row.Closed = time.Unix(0, c.closed).UTC()
	}
	row.Clean = kind == CloseFIN && c.d[0].finAcked && c.d[1].finAcked && !c.inDuel
	if c.inDuel {
		row.Duels = 1
	}
	t.Connections++
	t.Closes[kind.String()]++
	if row.Clean {
		t.CleanCloses++
	}
	if row.Failed {
		t.FailedRequests++
	}
	t.Retransmissions += c.retrans
	t.SYNRetransmissions += c.synRetrans
	t.FINRetransmissions += c.finRetrans
	t.IgnoredRSTs += c.ignoredRSTs
	if c.twReuse {
		t.TimeWaitReuses++
	}
	a.durations.add(end - c.start)
	switch {
	case len(a.report.Connections) < a.cfg.MaxConnections:
		a.report.Connections = append(a.report.Connections, row)
	case !row.Clean && a.notable < a.cfg.MaxConnections:
		a.notable++
		a.report.Connections = append(a.report.Connections, row)
	default:
		a.report.ConnectionsOmitted++
	}
}

// Live returns the number of tuples the analyzer holds state for.
func (a *Analyzer) Live() int { return a.tr.Len() }

// LiveCounts are an Analyzer's figures so far, by the same definitions as
// its Report: for a display while the segments still come.
type LiveCounts struct {
	// Segments counts the segments added (Totals.Segments).
	Segments int
	// Connections counts the incarnations started so far, finished or
	// not.
	Connections int
	// Duels counts the duels so far: those ended and those running.
	// OngoingDuels counts the running ones: runs of out-of-connection
	// segments that have made their two turns and have not ended. Whether
	// a run has ended is checked only as later segments come (the
	// Analyzer reads no clock).
	Duels, OngoingDuels int
	// IgnoredRSTs and TimeWaitReuses count over every incarnation so
	// far, finished or live.
	IgnoredRSTs, TimeWaitReuses int
}

// LiveCounts returns the figures so far. Once every event has been added
// they equal the totals Finish reports. It allocates nothing.
func (a *Analyzer) LiveCounts() LiveCounts {
	t := &a.report.Totals
	return LiveCounts{
		Segments:       t.Segments,
		Connections:    a.nextID,
		Duels:          t.Duels + a.running,
		OngoingDuels:   a.running,
		IgnoredRSTs:    a.ignored,
		TimeWaitReuses: a.twReuses,
	}
}

// SetRun sets the lab run's metadata (Config.Run) once the Analyzer is
// running, as a live analysis learns when the workload stopped only while
// the segments come. The duels already listed are judged again against
// it, so the report is the one Config.Run would have given, except for
// duels that ended before the call and were left out of Report.Duels
// (beyond MaxDuels): those keep the judgement they had. The run's Stacks
// are not applied: the tracker takes the stacks at NewAnalyzer, and a run
// without Stacks keeps those in the report.
func (a *Analyzer) SetRun(run *RunInfo) {
	if run != nil && run.Stacks == nil && a.stacks != nil {
		// The report names the stacks the tracker has used.
		r := *run
		r.Stacks = a.stacks
		run = &r
	}
	a.cfg.Run = run
	a.report.Run = run
	t := &a.report.Totals
	for i := range a.report.Duels {
		d := &a.report.Duels[i]
		if d.AfterWorkload != nil && *d.AfterWorkload {
			t.DuelsAfterWorkload--
		}
		d.AfterWorkload, d.AfterWorkloadSeconds = nil, 0
		if run == nil || run.WorkloadEnd.IsZero() {
			continue
		}
		start, end, wend := d.Start.UnixNano(), d.End.UnixNano(), run.WorkloadEnd.UnixNano()
		after := end > wend
		d.AfterWorkload = &after
		if after {
			d.AfterWorkloadSeconds = secondsOf(end - max(start, wend))
			t.DuelsAfterWorkload++
		}
	}
}

// Finish ends every live incarnation and duel and returns the report.
// The Analyzer must not be used after.
func (a *Analyzer) Finish() *Report {
	// Finish in order of first segment, so reports do not depend on the
	// table's order.
	var live []*tupleState
	for i := range a.tuples {
		if ts := &a.tuples[i]; ts.cur != nil || ts.run != nil {
			live = append(live, ts)
		}
	}
	slices.SortFunc(live, func(x, y *tupleState) int { return cmp.Compare(x.order(), y.order()) })
	end := time.Unix(0, a.last)
	for _, ts := range live {
		if r := ts.run; r != nil {
			// Ongoing: a stack may still send on the tuple (by the
			// tracker's state at the end of the inputs) and it has not been
			// quiet past the longest back-off.
			ongoing := false
			if tc, _ := a.tr.Lookup(r.orig); tc != nil {
				a.tr.Age(tc, end)
				ongoing = tc.MaySend() && uint64(a.last-r.end) <= uint64(a.backoff)
			}
			a.endRun(ts, ongoing)
		}
		if ts.cur != nil {
			a.finish(ts.cur)
		}
	}
	a.tuples = nil
	r := &a.report
	if a.first != 0 {
		r.First, r.Last = time.Unix(0, a.first).UTC(), time.Unix(0, a.last).UTC()
	}
	r.Totals.ConnTimeP50 = secondsOf(a.durations.quantile(0.50))
	r.Totals.ConnTimeP99 = secondsOf(a.durations.quantile(0.99))
	slices.SortStableFunc(r.Connections, func(x, y Connection) int {
		if c := x.Start.Compare(y.Start); c != 0 {
			return c
		}
		return cmp.Compare(x.ID, y.ID)
	})
	slices.SortStableFunc(r.Duels, func(x, y Duel) int {
		if c := x.Start.Compare(y.Start); c != 0 {
			return c
		}
		return cmp.Compare(x.Orig+x.Resp, y.Orig+y.Resp)
	})
	for i := range r.Duels {
		r.Duels[i].ID = i + 1
	}
	a.infer.judge(r)
	return r
}

// order sorts tuples by the incarnation they hold.
func (ts *tupleState) order() int {
	if ts.cur != nil {
		return ts.cur.id
	}
	return ts.run.connID
}

// Analyze reads the inputs, merges them by time and returns the report.
// When any input is a capture, the captures supply the segments and the
// JSON Lines logs only annotate them with verdicts; otherwise the logs
// supply the segments. See DEFINITIONS.md.
func Analyze(ctx context.Context, cfg Config, paths []string) (*Report, error) {
	if len(paths) == 0 {
		return nil, errors.New("analysis: no input")
	}
	formats := make([]Format, len(paths))
	var captures, logs int
	for i, p := range paths {
		f, err := fileFormat(p)
		if err != nil {
			return nil, err
		}
		formats[i] = f
		if f == FormatJSONL {
			logs++
		} else {
			captures++
		}
	}
	opt := openOptions{verdictsOnly: captures > 0, countComments: logs == 0}
	var sources []source
	defer func() {
		for _, s := range sources {
			s.close()
		}
	}()
	for i, p := range paths {
		s, err := openSource(p, i, formats[i], opt)
		if err != nil {
			return nil, err
		}
		sources = append(sources, s)
	}
	a := NewAnalyzer(cfg)
	if err := feed(ctx, a, sources); err != nil {
		return nil, err
	}
	r := a.Finish()
	for _, s := range sources {
		info := *s.stats()
		r.Inputs = append(r.Inputs, info)
		r.Totals.Skipped += info.Skipped
	}
	return r, nil
}

// feed merges the sources by time into a.
func feed(ctx context.Context, a *Analyzer, sources []source) error {
	heads := make([]Event, len(sources))
	live := make([]bool, len(sources))
	for i, s := range sources {
		err := s.next(&heads[i])
		if err == nil {
			live[i] = true
		} else if !errors.Is(err, io.EOF) {
			return err
		}
	}
	for n := 0; ; n++ {
		if n&0xffff == 0 && ctx.Err() != nil {
			return fmt.Errorf("analysis: %w", ctx.Err())
		}
		best := -1
		for i := range heads {
			if live[i] && (best < 0 || heads[i].Time < heads[best].Time) {
				best = i
			}
		}
		if best < 0 {
			return nil
		}
		a.Add(&heads[best])
		err := sources[best].next(&heads[best])
		if err != nil {
			live[best] = false
			if !errors.Is(err, io.EOF) {
				return err
			}
		}
	}
}
