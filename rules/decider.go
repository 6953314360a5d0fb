package rules

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/closeduel/closeduel/mitigate"
	"github.com/closeduel/closeduel/nfq"
	"github.com/closeduel/closeduel/segment"
	"github.com/closeduel/closeduel/tcpstate"
)

// Options tune a Decider beyond what its rule file says.
type Options struct {
	// MaxConns, when above zero, overrides the file's tracker max-conns.
	MaxConns int
}

// RuleStatus is the run-time state of one rule.
type RuleStatus struct {
	Name    string
	Enabled bool
	// Hits counts the segments the rule decided since its file was loaded.
	Hits uint64
	// Action is what the rule does, in the language's words.
	Action string
}

// Decider runs a rule file against the engine's packets. It implements
// nfq.Decider and nfq.InjectObserver: Decide and Injected must be called
// from one goroutine (the engine's); Reload, SetEnabled, Rules, File and
// TrackerStats are safe from any goroutine.
type Decider struct {
	cur       atomic.Pointer[ruleset]
	tr        *tcpstate.Tracker
	mit       *mitigate.Mitigator
	maxConns  int
	sides     map[int]*connSide // by tracker slot, only connections with segments held or holds in force
	scratch   connSide          // the state of a connection without any
	free      []*connSide       // emptied states, for reuse
	started   bool
	start     time.Time
	nextHold  uint64
	nextToken uint32
}

var (
	_ nfq.Decider        = (*Decider)(nil)
	_ nfq.InjectObserver = (*Decider)(nil)
	_ nfq.HoldObserver   = (*Decider)(nil)
)

// ruleset is one loaded file with its run-time state. Reload swaps the
// whole ruleset, so counters and the random source start afresh.
type ruleset struct {
	file     *File
	rules    []liveRule
	counters []counter
	maxConns int
	rng      *rand.Rand
	index    portIndex
	scan     bool // tests: look at every rule, without the index
}

type liveRule struct {
	*Rule
	enabled atomic.Bool
	hits    atomic.Uint64
	ctr     int // first index in ruleset.counters, -1 when the rule counts nothing
}

// counter is one rule's count in one connection incarnation.
type counter struct {
	id          uint64
	seen, fired uint32
}

// maxPending bounds the deliveries a connection can have in flight
// (delayed or held segments) before older ones are taken as arrived.
const maxPending = 4

// pending is a segment whose arrival is deferred: until the engine says
// it left (token), or until due, or until the hold key is released.
type pending struct {
	seg   segment.Segment
	id    uint64
	due   time.Time
	key   uint64
	token uint64
}

// hold is one hold-until-next action in force on a connection: its key
// and what releases it (nil: any next segment).
type hold struct {
	key     uint64
	release *match
}

// connSide is the Decider's own state for one tracked connection.
type connSide struct {
	id    uint64
	holds [maxPending]hold
	nh    int
	pend  [maxPending]pending
	n     int
}

// The direction names Decision.Dir takes, by the sender's Role.
var dirNames = [2]string{"client>device", "device>client"}

// NewDecider returns a Decider running f.
func NewDecider(f *File, opts Options) *Decider {
	d := &Decider{}
	cfg := tcpstate.Config{MaxConns: f.MaxConns, Idle: f.Idle, MSL: f.MSL, Stack: d.StackOf}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	d.tr = tcpstate.New(cfg)
	d.maxConns = d.tr.Config().MaxConns
	d.sides = make(map[int]*connSide)
	d.mit = mitigate.New(mitigate.Config{On: f.Mitigations, Slots: d.maxConns})
	d.cur.Store(d.compile(f))
	return d
}

// compile builds a ruleset for f.
func (d *Decider) compile(f *File) *ruleset {
	rs := &ruleset{file: f, rules: make([]liveRule, len(f.Rules)), maxConns: d.maxConns,
		rng: rand.New(rand.NewPCG(f.Seed, f.Seed^0x9e3779b97f4a7c15))}
	n := 0
	for i := range f.Rules {
		r := &rs.rules[i]
		r.Rule = &f.Rules[i]
		r.enabled.Store(f.Rules[i].Enabled)
		r.ctr = -1
		if r.when.counts() {
			r.ctr = n * d.maxConns
			n++
		}
	}
	rs.counters = make([]counter, n*d.maxConns)
	rs.index.build(rs.rules)
	return rs
}

// StackOf says which stack the endpoint at a runs, by the roles and
// stacks: of the file in force (File.StackOf). The Decider's tracker asks
// it, and so does whatever analyses the same traffic (run's live
// analysis), so both assume the same stacks. It is safe for concurrent
// use.
func (d *Decider) StackOf(a netip.AddrPort) tcpstate.Stack {
	return d.cur.Load().file.StackOf(a)
}

// Reload swaps in a new file at once. The tracker keeps what it knows
// about every connection; rule counters, hits, the random source and the
// enabled flags start afresh from f, and the mitigations are switched as
// its mitigations: section says. The tracker's own settings (msl, idle,
// max-conns) stay those of the first file. It returns the mitigations it
// switched.
func (d *Decider) Reload(f *File) []MitigationSwitch {
	d.cur.Store(d.compile(f))
	var out []MitigationSwitch
	for _, n := range mitigate.All() {
		if on := f.Mitigations.Has(n); d.mit.Set(n, on) {
			out = append(out, MitigationSwitch{Name: n.String(), On: on})
		}
	}
	return out
}

// MitigationSwitch is one mitigation switched on or off.
type MitigationSwitch struct {
	Name string
	On   bool
}

// SetMitigation switches the named mitigation on or off at once, without
// touching the rules; it reports whether that changed anything.
func (d *Decider) SetMitigation(name string, on bool) (bool, error) {
	n, ok := mitigate.ParseName(name)
	if !ok {
		return false, fmt.Errorf("rules: no mitigation %q%s; the mitigations are %s", name, didYouMean(name, mitigate.Names()), strings.Join(mitigate.Names(), ", "))
	}
	if on && !d.cur.Load().file.HasRoles() {
		return false, fmt.Errorf("rules: mitigation %s needs to know the client and the device: experiment %s has no hosts:", name, d.cur.Load().file.Experiment)
	}
	return d.mit.Set(n, on), nil
}

// Mitigations returns the mitigations switched on.
func (d *Decider) Mitigations() mitigate.Set { return d.mit.On() }

// MitigationStats returns the mitigations' counters.
func (d *Decider) MitigationStats() *mitigate.Stats { return d.mit.Stats() }

// File returns the file in force.
func (d *Decider) File() *File { return d.cur.Load().file }

// SetEnabled turns the named rule of the file in force on or off.
func (d *Decider) SetEnabled(rule string, on bool) error {
	rs := d.cur.Load()
	names := make([]string, len(rs.rules))
	for i := range rs.rules {
		r := &rs.rules[i]
		if r.Name == rule {
			r.enabled.Store(on)
			return nil
		}
		names[i] = r.Name
	}
	if len(names) == 0 {
		return fmt.Errorf("rules: no rule %q: experiment %s has no rules", rule, rs.file.Experiment)
	}
	return fmt.Errorf("rules: no rule %q in experiment %s%s; its rules are %s", rule, rs.file.Experiment, didYouMean(rule, names), strings.Join(names, ", "))
}

// Rules returns the state of every rule of the file in force.
func (d *Decider) Rules() []RuleStatus {
	rs := d.cur.Load()
	out := make([]RuleStatus, len(rs.rules))
	for i := range rs.rules {
		r := &rs.rules[i]
		out[i] = RuleStatus{Name: r.Name, Enabled: r.enabled.Load(), Hits: r.hits.Load(), Action: r.do.kind.String()}
	}
	return out
}

// TrackerStats returns the connection tracker's counters.
func (d *Decider) TrackerStats() *tcpstate.Stats { return d.tr.Stats() }

// TrackerConfig returns the configuration the Decider's tracker runs with
// (defaults filled in; Stack is StackOf).
func (d *Decider) TrackerConfig() tcpstate.Config { return d.tr.Config() }

// scope says whether a segment belongs to the experiment and which role
// sent it (noRole when the file names none).
func (rs *ruleset) scope(s *segment.Segment) (Role, bool) {
	f := rs.file
	if len(f.Ports) > 0 {
		ok := false
		for _, p := range f.Ports {
			if p == s.Src.Port() || p == s.Dst.Port() {
				ok = true
				break
			}
		}
		if !ok {
			return noRole, false
		}
	}
	if !f.HasRoles() {
		return noRole, true
	}
	in := func(r Role, a netip.Addr) bool {
		for _, p := range f.Hosts[r] {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	switch {
	case in(Client, s.Src.Addr()) && in(Device, s.Dst.Addr()):
		return Client, true
	case in(Device, s.Src.Addr()) && in(Client, s.Dst.Addr()):
		return Device, true
	}
	return noRole, false
}

// Decide matches the packet against the rules in force and fills dec.
func (d *Decider) Decide(p *nfq.Packet, dec *nfq.Decision) {
	if !p.TCP {
		return
	}
	rs := d.cur.Load()
	seg := &p.Seg
	from, ok := rs.scope(seg)
	if !ok {
		return
	}
	now := p.Time
	if !d.started {
		d.started, d.start = true, now
	}
	side := mitigate.Side(from)
	moved := d.mit.Translate(p.Data, seg, side, d.tr, now)
	if moved.Acted {
		dec.Modified = true
	}
	res := d.tr.Sent(seg, now)
	c := res.Conn
	cs := d.side(res.Slot, c.ID)
	defer d.keep(res.Slot, cs)
	d.flush(cs, now)
	dec.Conn = c.ID
	if from >= 0 {
		dec.Dir = dirNames[from]
	}
	v := view{seg: seg, res: &res, fromRole: from, elapsed: now.Sub(d.start)}

	// Each hold in force is released by its own condition.
	for i := 0; i < cs.nh; {
		h := cs.holds[i]
		if h.release == nil || h.release.static(&v) {
			dec.AddRelease(h.key) // at most maxPending == nfq.MaxReleases holds
			cs.nh--
			cs.holds[i] = cs.holds[cs.nh]
			continue
		}
		i++
	}

	var fired *liveRule
	fix := d.mit.After(seg, &res, side, now)
	switch {
	case fix.Acted: // the mitigation decides
	case rs.scan:
		fired = rs.firstByScan(&v)
	default:
		fired = rs.first(&v)
	}
	deliver, due, key := true, time.Time{}, uint64(0)
	var in *inject
	switch {
	case fix.Acted:
		dec.Rule, dec.Action = fix.By.String(), "drop"
		if fix.Drop {
			dec.Verdict = nfq.Drop
			deliver = false
		}
		if fix.Inject {
			dec.Action = "inject"
			for i := range fix.Injects {
				dec.AddInject(nfq.Inject{Template: fix.Templates[i]})
			}
		}
	case moved.Acted:
		dec.Rule, dec.Action, dec.Rewrote = mitigate.TimewaitGuard.String(), "rewrite", moved.Rewrote
	}
	if fired != nil {
		a := &fired.do
		dec.Rule, dec.Action = fired.Name, a.kind.String()
		switch a.kind {
		case actDrop:
			dec.Verdict = nfq.Drop
			deliver = false
		case actDelay:
			dec.Delay = rs.delay(a)
			deliver, due = false, now.Add(dec.Delay)
		case actDuplicate:
			dec.Duplicates, dec.DupGap = a.count, a.gap
		case actRewrite:
			if applyRewrite(p.Data, seg, &a.rw) {
				dec.Modified, dec.Rewrote = true, a.text
				dec.RepairChecksums = a.rw.repair
			}
		case actInject:
			in = &a.inj
			if in.drop {
				dec.Verdict = nfq.Drop
				deliver = false
			}
		case actHold:
			if k := d.holdKey(cs, a.release); k != 0 {
				dec.HoldKey, dec.Delay = k, a.holdMax
				deliver, due, key = false, now.Add(a.holdMax), k
			}
		}
	}
	if in != nil && (in.before || !deliver) {
		d.addInjects(dec, in, c, res.From, from)
		in = nil
	}
	switch {
	case deliver:
		d.tr.Deliver(seg, c.ID, now)
	case dec.Verdict != nfq.Drop:
		d.nextToken++
		dec.Token = uint64(res.Slot)<<32 | uint64(d.nextToken)
		d.defer_(cs, pending{seg: *seg, id: c.ID, due: due, key: key, token: dec.Token}, now)
	}
	for i := 0; i < dec.NReleases; i++ {
		d.releaseHeld(cs, dec.Releases[i], now)
	}
	if in != nil {
		d.addInjects(dec, in, c, res.From, from)
	}
	if view := d.mit.Restore(p.Data, seg, &moved); view != 0 {
		dec.Modified, dec.LogDstPort = true, view
	}
}

// admit applies a rule's counting, limits and chance to a segment its
// static conditions matched, and counts the hit when it fires.
func (rs *ruleset) admit(r *liveRule, res *tcpstate.Result) bool {
	m := &r.when
	var ctr *counter
	if r.ctr >= 0 {
		ctr = &rs.counters[r.ctr+res.Slot]
		if ctr.id != res.Conn.ID {
			*ctr = counter{id: res.Conn.ID}
		}
		ctr.seen++
		n := ctr.seen
		switch {
		case m.nth > 0 && m.every > 0:
			if n < m.nth || (n-m.nth)%m.every != 0 {
				return false
			}
		case m.nth > 0:
			if n != m.nth {
				return false
			}
		case m.every > 0:
			if n%m.every != 0 {
				return false
			}
		}
		if m.limitConn > 0 && uint64(ctr.fired) >= m.limitConn {
			return false
		}
	}
	if m.limit > 0 && r.hits.Load() >= m.limit {
		return false
	}
	if m.hasProb && rs.rng.Float64() >= m.prob {
		return false
	}
	r.hits.Add(1)
	if ctr != nil {
		ctr.fired++
	}
	return true
}

// delay draws a delay for a delay action.
func (rs *ruleset) delay(a *action) time.Duration {
	var d time.Duration
	switch a.dist {
	case distNormal:
		d = a.delay + time.Duration(rs.rng.NormFloat64()*float64(a.jitter))
	case distExponential:
		d = min(time.Duration(rs.rng.ExpFloat64()*float64(a.delay)), capExp(a.delay))
	default:
		d = a.delay
		if a.jitter > 0 {
			d += time.Duration((2*rs.rng.Float64() - 1) * float64(a.jitter))
		}
	}
	return min(max(d, 0), maxDelay)
}

// applyRewrite rewrites pkt (and seg) in place; false when the packet is
// too short for its own headers.
func applyRewrite(pkt []byte, seg *segment.Segment, rw *rewrite) bool {
	f := seg.Flags
	if rw.replace {
		f = rw.flags
	}
	f = f | rw.set&^rw.clear
	f &^= rw.clear
	if segment.SetFlags(pkt, seg, f) != nil {
		return false
	}
	if s, ok := rw.seq.apply(seg.Seq); ok {
		segment.SetSeq(pkt, seg, s)
	}
	if a, ok := rw.ack.apply(seg.Ack); ok {
		segment.SetAck(pkt, seg, a)
	}
	if rw.window >= 0 {
		segment.SetWindow(pkt, seg, uint16(rw.window))
	}
	if rw.strip {
		segment.StripOptions(pkt, seg)
	}
	return true
}

// apply returns the rewritten number and whether there is one.
func (s seqSpec) apply(orig segment.Seq) (segment.Seq, bool) {
	switch s.mode {
	case seqAbs:
		return segment.Seq(uint32(s.v)), true
	case seqRel:
		return orig.Add(uint32(int32(s.v))), true
	}
	return orig, false
}

// addInjects fills the crafted segments of an inject action from the
// tracker's view of the connection.
func (d *Decider) addInjects(dec *nfq.Decision, in *inject, c *tcpstate.Conn, fromEnd int, fromRole Role) {
	var t int
	switch in.toward {
	case towardSender:
		t = fromEnd
	case towardReceiver:
		t = 1 - fromEnd
	default:
		if fromRole < 0 {
			return
		}
		want := Client
		if in.toward == towardDevice {
			want = Device
		}
		t = fromEnd
		if want != fromRole {
			t = 1 - fromEnd
		}
	}
	et, eo := &c.Ends[t], &c.Ends[1-t]
	var next segment.Seq
	switch {
	case et.Rcv:
		next = et.RcvNxt
	case eo.Sent:
		next = eo.SndNxt
	default:
		return // nothing known about the sequence space yet
	}
	tpl := segment.Template{Tuple: segment.Tuple{Src: eo.Addr, Dst: et.Addr}, Flags: in.flags}
	switch in.seq.mode {
	case seqKeep:
		tpl.Seq = next
	case seqInWindow:
		tpl.Seq = next.Add(max(1, min(et.Window/2, 1<<30)))
	case seqAbs:
		tpl.Seq = segment.Seq(uint32(in.seq.v))
	case seqRel:
		tpl.Seq = next.Add(uint32(int32(in.seq.v)))
	}
	if in.flags&segment.ACK != 0 || in.ack.mode != seqKeep {
		var ack segment.Seq
		switch {
		case eo.Rcv:
			ack = eo.RcvNxt
		case et.Sent:
			ack = et.SndNxt
		}
		switch in.ack.mode {
		case seqAbs:
			ack = segment.Seq(uint32(in.ack.v))
		case seqRel:
			ack = ack.Add(uint32(int32(in.ack.v)))
		}
		tpl.Ack = ack
	}
	switch {
	case in.window >= 0:
		tpl.Window = uint16(in.window)
	case in.flags&segment.RST == 0:
		tpl.Window = eo.RawWindow
	}
	for range in.count {
		dec.AddInject(nfq.Inject{Template: tpl, Before: in.before})
	}
}

// defer_ queues a deferred arrival; when the queue is full the oldest is
// taken as arrived.
func (d *Decider) defer_(side *connSide, p pending, now time.Time) {
	if side.n == maxPending {
		d.tr.Deliver(&side.pend[0].seg, side.pend[0].id, now)
		copy(side.pend[:], side.pend[1:])
		side.n--
	}
	side.pend[side.n] = p
	side.n++
}

// flush delivers the deferred segments whose time has come.
func (d *Decider) flush(side *connSide, now time.Time) {
	j := 0
	for i := 0; i < side.n; i++ {
		p := &side.pend[i]
		if !p.due.After(now) {
			d.tr.Deliver(&p.seg, p.id, p.due)
			continue
		}
		side.pend[j] = *p
		j++
	}
	side.n = j
	d.forgetHolds(side)
}

// side returns the Decider's state of connection id in tracker slot
// slot: the stored one, or d.scratch, empty, when it has none. Most
// connections never hold a segment, so only those that do take memory
// (100k tracked connections would otherwise cost 76 MB here).
func (d *Decider) side(slot int, id uint64) *connSide {
	if len(d.sides) > 0 { // nothing held anywhere, the usual case, needs no lookup
		if cs := d.sides[slot]; cs != nil {
			if cs.id != id {
				*cs = connSide{id: id} // the slot went to a new connection
			}
			return cs
		}
	}
	d.scratch = connSide{id: id}
	return &d.scratch
}

// keep stores the state side returned when it now holds something, and
// lets a stored one go when it emptied.
func (d *Decider) keep(slot int, cs *connSide) {
	busy := cs.n > 0 || cs.nh > 0
	switch {
	case cs == &d.scratch && busy:
		var s *connSide
		if n := len(d.free); n > 0 {
			s, d.free = d.free[n-1], d.free[:n-1]
		} else {
			s = new(connSide)
		}
		*s = *cs
		d.sides[slot] = s
	case cs != &d.scratch && !busy:
		delete(d.sides, slot)
		d.free = append(d.free, cs)
	}
}

// forgetHolds drops the holds of which no segment is held any more: the
// engine let them go.
func (d *Decider) forgetHolds(side *connSide) {
	for i := 0; i < side.nh; {
		held := false
		for k := 0; k < side.n; k++ {
			if side.pend[k].key == side.holds[i].key {
				held = true
				break
			}
		}
		if !held {
			side.nh--
			side.holds[i] = side.holds[side.nh]
			continue
		}
		i++
	}
}

// holdKey returns the key to hold a segment under for a hold action whose
// release condition is release: the key of the hold in force with the
// same condition, or a new one. It returns 0 when the connection has
// maxPending holds in force already (the segment is then not held).
func (d *Decider) holdKey(side *connSide, release *match) uint64 {
	for i := 0; i < side.nh; i++ {
		if side.holds[i].release == release {
			return side.holds[i].key
		}
	}
	if side.nh == maxPending {
		return 0
	}
	d.nextHold++
	side.holds[side.nh] = hold{key: d.nextHold, release: release}
	side.nh++
	return d.nextHold
}

// Left is told by the engine when a segment held or delayed under token
// left (nfq.HoldObserver): the tracker sees it arrive then, whether it
// was released, fell due, was refused for want of room or let go at
// shutdown.
func (d *Decider) Left(token uint64, _ nfq.Leave, at time.Time) {
	slot := int(token >> 32)
	side := d.sides[slot]
	if side == nil {
		return
	}
	for i := 0; i < side.n; i++ {
		if p := &side.pend[i]; p.token == token {
			d.tr.Deliver(&p.seg, p.id, at)
			copy(side.pend[i:], side.pend[i+1:side.n])
			side.n--
			d.forgetHolds(side)
			d.keep(slot, side)
			return
		}
	}
}

// releaseHeld delivers the segments held under key.
func (d *Decider) releaseHeld(side *connSide, key uint64, now time.Time) {
	j := 0
	for i := 0; i < side.n; i++ {
		p := &side.pend[i]
		if p.key == key {
			d.tr.Deliver(&p.seg, p.id, now)
			continue
		}
		side.pend[j] = *p
		j++
	}
	side.n = j
}

// Injected tells the tracker about a segment the engine crafted and sent.
func (d *Decider) Injected(seg *segment.Segment, at time.Time) {
	c, slot := d.tr.Lookup(seg.Tuple())
	if c == nil {
		return
	}
	if side := d.sides[slot]; side != nil && side.id == c.ID {
		d.flush(side, at)
		d.keep(slot, side)
	}
	d.tr.Forged(seg, at)
}
