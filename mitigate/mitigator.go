package mitigate

import (
	"sync/atomic"
	"time"

	"github.com/closeduel/closeduel/segment"
	"github.com/closeduel/closeduel/tcpstate"
)

// Side says which of the experiment's roles sent a segment.
type Side int8

// The sides; the values are those of rules.Role.
const (
	NoSide Side = -1
	Client Side = 0
	Device Side = 1
)

// Defaults for Config's zero fields.
const (
	// DefaultGuardLow and DefaultGuardHigh bound the source ports the
	// timewait-guard moves connections to: above Linux's default
	// ephemeral range (32768-60999), so the client itself does not pick
	// them.
	DefaultGuardLow  = 61000
	DefaultGuardHigh = 65535
	// DefaultMaxMappings bounds the connections moved at once.
	DefaultMaxMappings = 1024
	// DefaultQuenchTurns is K, the turns of a duel forwarded before
	// duel-quench drops the rest.
	DefaultQuenchTurns = 2
	// DefaultQuenchFor is how long a quench lasts on a tuple.
	DefaultQuenchFor = 30 * time.Second
	// maxProbes bounds the ports the guard tries for one SYN.
	maxProbes = 64
)

// Config sets a Mitigator's bounds. Zero fields take the defaults above.
type Config struct {
	// On is the set switched on at first.
	On Set
	// Slots is the tracker's MaxConns: per-connection state is kept by
	// tracker slot.
	Slots int
	// GuardLow, GuardHigh: the ports timewait-guard moves connections to.
	GuardLow, GuardHigh uint16
	// MaxMappings bounds the connections timewait-guard has moved at once.
	MaxMappings int
	// QuenchTurns and QuenchFor: duel-quench's K and how long it drops.
	QuenchTurns int
	QuenchFor   time.Duration
}

// Stats counts what the mitigations did; safe to read from any goroutine.
type Stats struct {
	// Moved counts connections timewait-guard moved to another port,
	// Translated the segments it rewrote, Released the mappings it let go,
	// Full the SYNs it could not move (no free port or mapping).
	Moved, Translated, Released, Full atomic.Uint64
	// Repaired counts the ACKs final-ack-repair sent in the client's
	// name, KeptRSTs the client RSTs it kept from the device, KeptACKs the
	// device ACKs it kept from a client with no socket.
	Repaired, KeptRSTs, KeptACKs atomic.Uint64
	// Quenched counts the duels duel-quench stopped, QuenchDrops the
	// segments it dropped.
	Quenched, QuenchDrops atomic.Uint64
	// Resets counts the RSTs fin-reset sent in the client's name.
	Resets atomic.Uint64
}

// MaxInjects is the most segments one Outcome sends.
const MaxInjects = 3

// add appends a segment to send.
func (o *Outcome) add(t segment.Template) {
	if o.Injects < MaxInjects {
		o.Templates[o.Injects] = t
		o.Injects++
		o.Inject = true
	}
}

// Outcome is what a mitigation did to one segment.
type Outcome struct {
	// By names the mitigation that acted; valid when Acted.
	By    Name
	Acted bool
	// Drop: the segment must not be forwarded.
	Drop bool
	// Rewrote says in words what was rewritten ("" for nothing).
	Rewrote string
	// Inject: send Templates[:Injects] as well, in order, after the
	// segment's verdict.
	Inject    bool
	Injects   int
	Templates [MaxInjects]segment.Template
}

// Mitigator runs the mitigations. Translate, After and Restore must be
// called from one goroutine (the Decider's); Set, On and Stats are safe
// from any.
type Mitigator struct {
	cfg    Config
	sw     switches
	maps   []mapping
	cursor int
	slots  []slotState // by tracker slot, allocated at first use
	stats  Stats
}

// slotState is the per-connection state, indexed by tracker slot.
type slotState struct {
	id       uint64 // the incarnation it belongs to
	repaired bool   // final-ack-repair answered for the client
	quench   quench
}

// New returns a Mitigator with its tables allocated.
func New(cfg Config) *Mitigator {
	if cfg.GuardLow == 0 {
		cfg.GuardLow = DefaultGuardLow
	}
	if cfg.GuardHigh == 0 {
		cfg.GuardHigh = DefaultGuardHigh
	}
	if cfg.GuardHigh < cfg.GuardLow {
		cfg.GuardLow, cfg.GuardHigh = cfg.GuardHigh, cfg.GuardLow
	}
	if cfg.MaxMappings <= 0 {
		cfg.MaxMappings = DefaultMaxMappings
	}
	if cfg.Slots <= 0 {
		cfg.Slots = tcpstate.DefaultMaxConns
	}
	if cfg.QuenchTurns <= 0 {
		cfg.QuenchTurns = DefaultQuenchTurns
	}
	if cfg.QuenchFor <= 0 {
		cfg.QuenchFor = DefaultQuenchFor
	}
	m := &Mitigator{cfg: cfg, maps: make([]mapping, 0, cfg.MaxMappings)}
	m.sw.v.Store(uint32(cfg.On))
	return m
}

// Set switches mitigation n on or off and reports whether that changed
// anything. Switching takes effect with the next segment; connections
// timewait-guard has moved stay moved until they are done.
func (m *Mitigator) Set(n Name, on bool) bool { return m.sw.set(n, on) }

// On returns the set switched on.
func (m *Mitigator) On() Set { return m.sw.load() }

// Stats returns the counters.
func (m *Mitigator) Stats() *Stats { return &m.stats }

// slot returns the state of the connection in res, reset when the slot
// changed hands.
func (m *Mitigator) slot(res *tcpstate.Result) *slotState {
	if m.slots == nil {
		// Once, when a mitigation that keeps per-connection state is
		// first on: a tracker of a million connections would otherwise
		// cost its table here with every mitigation off.
		m.slots = make([]slotState, m.cfg.Slots)
	}
	if res.Slot < 0 || res.Slot >= len(m.slots) {
		return nil
	}
	s := &m.slots[res.Slot]
	if s.id != res.Conn.ID {
		*s = slotState{id: res.Conn.ID}
	}
	return s
}

// After runs the mitigations that act on a segment the tracker has seen
// (res is what Sent returned for it): fin-reset, final-ack-repair, then
// duel-quench.
func (m *Mitigator) After(seg *segment.Segment, res *tcpstate.Result, side Side, now time.Time) Outcome {
	on := m.sw.load()
	if side == NoSide || on&(1<<FinalAckRepair|1<<DuelQuench|1<<FinReset) == 0 {
		return Outcome{}
	}
	st := m.slot(res)
	if st == nil {
		return Outcome{}
	}
	if on.Has(FinReset) {
		if o := m.reset(seg, res, side, st); o.Acted {
			return o
		}
	}
	if on.Has(FinalAckRepair) {
		if o := m.repair(seg, res, side, st); o.Acted {
			return o
		}
	}
	if on.Has(DuelQuench) {
		return m.quench(seg, res, side, st, now)
	}
	return Outcome{}
}
