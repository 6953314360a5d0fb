package tcpstate

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/closeduel/closeduel/segment"
)

// Defaults for Config's zero fields.
const (
	DefaultMaxConns = 4096
	DefaultIdle     = 5 * time.Minute
	DefaultMSL      = 60 * time.Second
	// DefaultLinuxTimeWait is Linux's TIME-WAIT (TCP_TIMEWAIT_LEN).
	DefaultLinuxTimeWait = 60 * time.Second
)

// Forget says why the tracker forgot a connection.
type Forget uint8

// Reasons to forget.
const (
	// Expired: neither endpoint may still act on it (see Config.Idle).
	Expired Forget = iota
	// Evicted: forgotten early, the least recently active, to make room
	// for a new 4-tuple when Config.MaxConns are tracked.
	Evicted
)

// Config sets a Tracker's bounds and assumptions. Zero fields take the
// defaults above.
type Config struct {
	// MaxConns bounds the connections tracked at once; when a new one
	// needs room the least recently active is evicted (and counted).
	MaxConns int
	// Idle is how long a connection with no segment is remembered,
	// unless an endpoint holds it open (ESTABLISHED, CLOSE-WAIT, or a
	// FIN-WAIT-2 its stack never times out): the stacks keep those
	// however quiet they are, and so does the tracker, until MaxConns
	// needs the slot. Fully closed connections are forgotten sooner,
	// 2·MSL after their last segment.
	Idle time.Duration
	// MSL is the maximum segment lifetime: 2·MSL is how long a closed
	// 4-tuple counts as recently closed for ReusesTuple, and how long
	// TIME-WAIT lasts on RFC 9293 and lwIP endpoints.
	MSL time.Duration
	// TimeWait, when above zero, is how long an endpoint of each stack
	// holds TIME-WAIT; zero entries mean 2·MSL, Linux's 60 s.
	TimeWait [NumStacks]time.Duration
	// Stack, when set, says which stack the endpoint at an address runs.
	// It is called once per endpoint when a connection is first seen; nil
	// means RFC9293 everywhere.
	Stack func(netip.AddrPort) Stack
	// Grow makes the table start small and double as connections come, up
	// to MaxConns (the analysis: memory follows the live state). Without
	// it the whole table is allocated in New and Sent never allocates (the
	// engine's hot path).
	Grow bool
	// OnForget, when set, is called with a connection just before the
	// tracker forgets it (the Conn and its slot are reused after). It must
	// not call the Tracker.
	OnForget func(c *Conn, slot int, why Forget)
}

// Result is what the tracker made of one sent segment. Conn points into
// the tracker and stays valid until the next call that may evict it (Sent).
type Result struct {
	Conn *Conn
	// At is the segment's time as the tracker keeps it (what the Conn's
	// times compare with).
	At Time
	// Slot is a dense index below Config.MaxConns that stays the
	// connection's while the tracker remembers it (across incarnations of
	// the same 4-tuple); callers use it to index side tables.
	Slot int
	// From is the index in Conn.Ends of the sender.
	From int
	// Before holds both endpoints' states before the segment, Fins how
	// many FINs each had sent before it.
	Before [2]State
	Fins   [2]uint32
	// Events says what the segment was.
	Events Event
	// WasClosed: the incarnation had closed (Conn.ClosedAt) before the
	// segment.
	WasClosed bool
}

// Stats counts what the tracker did. Fields are safe to read from any
// goroutine.
type Stats struct {
	Conns        atomic.Int64  // connections tracked now
	Created      atomic.Uint64 // 4-tuples first seen
	Incarnations atomic.Uint64 // new incarnations of a remembered 4-tuple
	Expired      atomic.Uint64 // forgotten after Idle, or 2·MSL after closing
	Evicted      atomic.Uint64 // forgotten early to make room (MaxConns)
}

// Tracker tracks TCP connections from the segments it is shown. Its memory
// is allocated once, in New: Sent and Deliver allocate nothing. A Tracker
// is not safe for concurrent use, except Stats.
type Tracker struct {
	cfg    Config
	conns  []Conn
	index  []int32 // open addressing: slot+1, 0 for empty
	mask   uint64
	seed   uint64
	prev   []int32 // LRU list, most recent at head
	next   []int32
	head   int32
	tail   int32
	free   []int32
	nextID uint64
	stats  Stats
	clock  clock
}

// New returns a Tracker with its table allocated.
func New(cfg Config) *Tracker {
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.Idle <= 0 {
		cfg.Idle = DefaultIdle
	}
	if cfg.MSL <= 0 {
		cfg.MSL = DefaultMSL
	}
	for s := range cfg.TimeWait {
		if cfg.TimeWait[s] <= 0 {
			cfg.TimeWait[s] = 2 * cfg.MSL
			if Stack(s) == Linux {
				cfg.TimeWait[s] = DefaultLinuxTimeWait
			}
		}
	}
	t := &Tracker{cfg: cfg, seed: 0x243f6a8885a308d3, head: -1, tail: -1}
	n := cfg.MaxConns
	if cfg.Grow {
		n = min(n, 64)
	}
	t.resize(n)
	return t
}

// resize makes room for n connections (n at least the current room) and
// indexes the tracked ones again.
func (t *Tracker) resize(n int) {
	old := len(t.conns)
	size := 16
	for size < 2*n {
		size <<= 1
	}
	t.conns = append(t.conns, make([]Conn, n-old)...)
	t.prev = append(t.prev, make([]int32, n-old)...)
	t.next = append(t.next, make([]int32, n-old)...)
	free := make([]int32, 0, n)
	for i := n - 1; i >= old; i-- {
		free = append(free, int32(i))
	}
	t.free = append(free, t.free...)
	t.index = make([]int32, size)
	t.mask = uint64(size - 1)
	for s := t.head; s >= 0; s = t.next[s] {
		i := t.hash(t.conns[s].Tuple) & t.mask
		for t.index[i] != 0 {
			i = (i + 1) & t.mask
		}
		t.index[i] = s + 1
	}
}

// Room returns how many connections the table holds now without growing.
func (t *Tracker) Room() int { return len(t.conns) }

// Config returns the configuration in force, defaults filled in.
func (t *Tracker) Config() Config { return t.cfg }

// Stats returns the tracker's counters.
func (t *Tracker) Stats() *Stats { return &t.stats }

// Sent shows the tracker a segment seen on the wire, at now, as sent by
// seg.Src. It updates what that tells about the sender (and, through its
// acknowledgments, about what the sender received) and classifies the
// segment. What the receiver makes of it is applied by Deliver, once the
// segment is known to arrive.
func (t *Tracker) Sent(seg *segment.Segment, at time.Time) Result {
	now := t.clock.stamp(at)
	t.expire(now)
	key, rev := seg.Tuple().Canonical()
	from := 0
	if rev {
		from = 1
	}
	f := seg.Flags
	var ev Event
	slot := t.lookup(key)
	if slot >= 0 && t.expirable(&t.conns[slot], now) {
		// Its time came while it was not at the cold end: forgotten
		// now, as expire would have, so what a segment meets does not
		// depend on the list's order.
		t.forget(int32(slot), Expired)
		slot = -1
	}
	var c *Conn
	if slot < 0 {
		slot = t.insert(key)
		c = &t.conns[slot]
		t.fresh(c, key, now)
		t.stats.Created.Add(1)
		ev |= NewIncarnation
		t.open(c, from, seg, now)
	} else {
		c = &t.conns[slot] // aged by expirable
		if f&segment.SYN != 0 && f&(segment.ACK|segment.RST) == 0 && c.startsNew(from, seg) {
			t.reincarnate(c, from, now)
			t.stats.Incarnations.Add(1)
			ev |= NewIncarnation
		}
		t.touch(slot)
	}
	r := Result{Conn: c, Slot: slot, At: now, From: from, Before: [2]State{c.Ends[0].State, c.Ends[1].State},
		Fins: [2]uint32{c.Ends[0].Fins, c.Ends[1].Fins}, WasClosed: !c.ClosedAt.IsZero()}
	if c.Midstream && ev&NewIncarnation != 0 {
		ev |= Midstream
	}
	r.Events = ev | c.sent(from, seg, now)
	return r
}

// Deliver applies, at now, the arrival of seg at its destination. id
// names the incarnation it belongs to (Result.Conn.ID); 0 means whichever
// is current. It reports whether the connection was found.
func (t *Tracker) Deliver(seg *segment.Segment, id uint64, at time.Time) bool {
	key, rev := seg.Tuple().Canonical()
	slot := t.lookup(key)
	if slot < 0 {
		return false
	}
	c := &t.conns[slot]
	if id != 0 && c.ID != id {
		return false
	}
	to := 1
	if rev {
		to = 0
	}
	now := t.clock.stamp(at)
	c.age(now, &t.cfg)
	c.deliver(to, seg, now)
	return true
}

// Forged applies, at now, the arrival at seg.Dst of a segment that a
// middlebox crafted in seg.Src's name: the destination takes it like any
// other (and an RST counts for AfterRST), but it says nothing about the
// endpoint it claims to come from. It reports whether the connection was
// found.
func (t *Tracker) Forged(seg *segment.Segment, at time.Time) bool {
	key, rev := seg.Tuple().Canonical()
	slot := t.lookup(key)
	if slot < 0 {
		return false
	}
	c := &t.conns[slot]
	if seg.Flags&segment.RST != 0 {
		c.RSTs++
	}
	to := 1
	if rev {
		to = 0
	}
	now := t.clock.stamp(at)
	c.age(now, &t.cfg)
	c.deliver(to, seg, now)
	return true
}

// Lookup returns the current incarnation of the connection seg belongs to
// and its slot, or nil and -1.
func (t *Tracker) Lookup(tuple segment.Tuple) (*Conn, int) {
	key, _ := tuple.Canonical()
	slot := t.lookup(key)
	if slot < 0 {
		return nil, -1
	}
	return &t.conns[slot], slot
}

// InTimeWait reports whether endpoint e (of a connection this tracker
// holds) is in TIME-WAIT at now, by its stack's TIME-WAIT length. The
// tracker ages states only when a connection sees a segment, so a looked-up
// endpoint can show a TIME-WAIT that has already run out.
func (t *Tracker) InTimeWait(e *Endpoint, now time.Time) bool {
	return e.State == TimeWait && t.clock.stamp(now).Sub(e.Since) < timeWaitLen(e.Stack, &t.cfg)
}

// Holds reports whether endpoint e still holds state for its tuple at now:
// any state but CLOSED and LISTEN, a TIME-WAIT only until it has run out.
// It is what makes a SYN on the tuple a reuse (Conn.Reused).
func (t *Tracker) Holds(e *Endpoint, now time.Time) bool {
	switch e.State {
	case Closed, Listen:
		return false
	case TimeWait:
		return t.InTimeWait(e, now)
	}
	return true
}

// Time returns a time the tracker keeps (in a Conn or an Endpoint, or a
// Result's At) as a time.Time; never is the zero time.Time.
func (t *Tracker) Time(v Time) time.Time { return t.clock.time(v) }

// Age applies to c (a connection this tracker holds) the timers that ran
// out before now (TIME-WAIT and FIN-WAIT-2 ending), as the tracker does
// before each segment.
func (t *Tracker) Age(c *Conn, now time.Time) { c.age(t.clock.stamp(now), &t.cfg) }

// Len returns how many connections are tracked.
func (t *Tracker) Len() int { return int(t.stats.Conns.Load()) }

// fresh resets c to a new incarnation of key.
func (t *Tracker) fresh(c *Conn, key segment.Tuple, now Time) {
	t.nextID++
	*c = Conn{ID: t.nextID, Incarnation: 1, Tuple: key, Opener: -1, FirstCloser: -1, Start: now, Last: now}
	c.Ends[0] = Endpoint{Addr: key.Src, WScale: -1, Since: now}
	c.Ends[1] = Endpoint{Addr: key.Dst, WScale: -1, Since: now}
	if t.cfg.Stack != nil {
		c.Ends[0].Stack = t.cfg.Stack(key.Src)
		c.Ends[1].Stack = t.cfg.Stack(key.Dst)
	}
}

// open sets the states of a connection first seen with seg from end from.
func (t *Tracker) open(c *Conn, from int, seg *segment.Segment, now Time) {
	f := seg.Flags
	p := &c.Ends[1-from]
	switch {
	case f&segment.SYN != 0 && f&(segment.ACK|segment.RST) == 0:
		c.Opener = int8(from)
		p.State = Listen
	case f&segment.SYN != 0 && f&segment.ACK != 0:
		// The SYN went by unseen: its sender is in SYN-SENT.
		c.Opener = int8(1 - from)
		p.State = SynSent
		p.ISS, p.SynSent = seg.Ack.Add(^uint32(0)), true
		p.SndNxt, p.Sent = seg.Ack, true
	default:
		c.Midstream, c.synced = true, true
		c.Ends[0].State, c.Ends[1].State = Established, Established
	}
}

// reincarnate turns c into a new incarnation opened by a SYN from end from.
// The other endpoint keeps its state when it still holds any (TIME-WAIT,
// or a half-open connection): its TCB is not the new connection's but it
// is what the SYN meets.
func (t *Tracker) reincarnate(c *Conn, from int, now Time) {
	prev := *c
	p := prev.Ends[1-from]
	p.Segments, p.Retransmissions, p.Fins, p.RSTSent = 0, 0, 0, false
	p.Base, p.BaseSet = 0, false
	carried := p.State != Closed && p.State != Listen
	t.fresh(c, prev.Tuple, now)
	c.Ends[0].Stack, c.Ends[1].Stack = prev.Ends[0].Stack, prev.Ends[1].Stack
	c.PrevID = prev.ID
	c.Incarnation = prev.Incarnation + 1
	c.Opener = int8(from)
	c.Reused = carried
	if carried {
		c.Ends[1-from] = p
	} else {
		c.Ends[1-from].State = Listen
	}
}

// expire forgets up to two connections at the cold end of the LRU list
// whose time has come. A connection held open (Endpoint.heldOpen) that has
// been quiet past Config.Idle is not forgotten but moved out of the cold
// end, so the connections behind it can expire; only memory (MaxConns)
// takes its slot.
func (t *Tracker) expire(now Time) {
	for range 2 {
		s := t.tail
		if s < 0 {
			return
		}
		c := &t.conns[s]
		if !t.expirable(c, now) {
			if now.Sub(c.Last) < t.cfg.Idle {
				return
			}
			t.touch(int(s))
			continue
		}
		t.forget(s, Expired)
	}
}

// expirable reports whether neither stack may still act on c at now: both
// endpoints closed (or listening) and the tuple quiet for 2·MSL, or quiet
// for Config.Idle with neither endpoint holding the connection open. A
// connection that both stacks keep ESTABLISHED is remembered however long
// it is quiet, as the stacks remember it.
func (t *Tracker) expirable(c *Conn, now Time) bool {
	c.age(now, &t.cfg)
	idle := now.Sub(c.Last)
	if c.Ends[0].State <= Listen && c.Ends[1].State <= Listen && idle >= 2*t.cfg.MSL {
		return true
	}
	return idle >= t.cfg.Idle && !c.Ends[0].heldOpen() && !c.Ends[1].heldOpen()
}

// forget removes the connection in slot s, telling OnForget why first.
func (t *Tracker) forget(s int32, why Forget) {
	if t.cfg.OnForget != nil {
		t.cfg.OnForget(&t.conns[s], int(s), why)
	}
	t.remove(s)
	if why == Evicted {
		t.stats.Evicted.Add(1)
	} else {
		t.stats.Expired.Add(1)
	}
}

func (t *Tracker) hash(k segment.Tuple) uint64 {
	a, b := k.Src.Addr().As16(), k.Dst.Addr().As16()
	h := t.seed
	h = mix(h ^ le64(a[:8]))
	h = mix(h ^ le64(a[8:]))
	h = mix(h ^ le64(b[:8]))
	h = mix(h ^ le64(b[8:]))
	h = mix(h ^ (uint64(k.Src.Port())<<16 | uint64(k.Dst.Port())))
	return h
}

func mix(x uint64) uint64 {
	x *= 0x9e3779b97f4a7c15
	return x ^ x>>29
}

func le64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// lookup returns the slot holding key, or -1.
func (t *Tracker) lookup(key segment.Tuple) int {
	for i := t.hash(key) & t.mask; ; i = (i + 1) & t.mask {
		v := t.index[i]
		if v == 0 {
			return -1
		}
		if t.conns[v-1].Tuple == key {
			return int(v - 1)
		}
	}
}

// insert takes a slot for key (evicting the least recently active
// connection when none is free) and indexes it. The caller fills the Conn.
func (t *Tracker) insert(key segment.Tuple) int {
	if len(t.free) == 0 && len(t.conns) < t.cfg.MaxConns {
		t.resize(min(2*len(t.conns), t.cfg.MaxConns))
	}
	if len(t.free) == 0 {
		t.forget(t.tail, Evicted)
	}
	s := t.free[len(t.free)-1]
	t.free = t.free[:len(t.free)-1]
	t.conns[s].Tuple = key
	i := t.hash(key) & t.mask
	for t.index[i] != 0 {
		i = (i + 1) & t.mask
	}
	t.index[i] = s + 1
	t.pushHead(s)
	t.stats.Conns.Add(1)
	return int(s)
}

// remove forgets the connection in slot s.
func (t *Tracker) remove(s int32) {
	key := t.conns[s].Tuple
	i := t.hash(key) & t.mask
	for t.index[i] != s+1 {
		i = (i + 1) & t.mask
	}
	// Backward-shift deletion keeps every probe chain unbroken.
	j := i
	for {
		j = (j + 1) & t.mask
		v := t.index[j]
		if v == 0 {
			break
		}
		k := t.hash(t.conns[v-1].Tuple) & t.mask
		if i <= j {
			if i < k && k <= j {
				continue
			}
		} else if i < k || k <= j {
			continue
		}
		t.index[i] = v
		i = j
	}
	t.index[i] = 0
	t.unlink(s)
	t.conns[s] = Conn{}
	t.free = append(t.free, s)
	t.stats.Conns.Add(-1)
}

func (t *Tracker) pushHead(s int32) {
	t.prev[s], t.next[s] = -1, t.head
	if t.head >= 0 {
		t.prev[t.head] = s
	}
	t.head = s
	if t.tail < 0 {
		t.tail = s
	}
}

func (t *Tracker) unlink(s int32) {
	p, n := t.prev[s], t.next[s]
	if p >= 0 {
		t.next[p] = n
	} else {
		t.head = n
	}
	if n >= 0 {
		t.prev[n] = p
	} else {
		t.tail = p
	}
}

// touch marks slot s as the most recently active.
func (t *Tracker) touch(s int) {
	if int32(s) == t.head {
		return
	}
	t.unlink(int32(s))
	t.pushHead(int32(s))
}
