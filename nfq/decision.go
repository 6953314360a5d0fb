package nfq

import (
	"net"
	"time"

	"github.com/closeduel/closeduel/segment"
	"github.com/closeduel/closeduel/vlanmark"
)

// Verdict is the kernel verdict a queued packet finally gets.
type Verdict uint8

// Verdicts.
const (
	Accept Verdict = iota // let the packet (possibly rewritten) continue
	Drop                  // discard the packet
)

// String returns "accept" or "drop".
func (v Verdict) String() string {
	switch v {
	case Accept:
		return "accept"
	case Drop:
		return "drop"
	}
	return "verdict(" + itoa(int(v)) + ")"
}

// Packet is one queued packet as the engine hands it to a Decider.
type Packet struct {
	// ID is the kernel's packet id in its queue.
	ID uint32
	// Time is when the engine received the packet.
	Time time.Time
	// Data is the raw IP packet. It is valid only until Decide returns;
	// a Decider may rewrite it in place (then it sets Decision.Modified;
	// the segment package's rewrites keep the TCP checksum as right or as
	// wrong as it was, and the engine recomputes it only when asked, see
	// Decision.RepairChecksums, or when ChecksumPartial).
	Data []byte
	// ChecksumPartial says the kernel has not computed the TCP checksum yet
	// (a locally sent packet whose checksum is offloaded): the field holds
	// only the pseudo-header's sum, so a rewritten packet gets its checksum
	// computed in full.
	ChecksumPartial bool
	// Seg is the decoded TCP segment; meaningful only when TCP is true.
	Seg segment.Segment
	// TCP reports whether Data decoded as a TCP segment.
	TCP bool
	// InDev, OutDev are the bridge's ifindexes, PhysIn, PhysOut the bridge
	// ports the packet entered and will leave by (0 when unknown).
	InDev, OutDev, PhysIn, PhysOut uint32
	// SrcMAC is the Ethernet source address of the frame, when known.
	SrcMAC net.HardwareAddr
	// VLAN is the VLAN tag (802.1Q or 802.1ad) the frame carried on the
	// bridge, the zero Tag when untagged or unknown: the queue carries it
	// only in the firewall mark that bridgehook's VLANTags rule sets.
	VLAN vlanmark.Tag
}

// MaxInjects is the most crafted segments one Decision can ask for.
const MaxInjects = 4

// MaxReleases is the most hold keys one Decision can release.
const MaxReleases = 4

// MaxDelay is the longest the engine holds a packet: a Delay beyond it is
// cut to it. Rule languages validate against it, so a rule never asks for
// more than the engine does.
const MaxDelay = time.Minute

// Inject asks the engine to craft a segment and send it toward Template's
// destination, out of the bridge port that host was learned on.
type Inject struct {
	Template segment.Template
	// Before sends the crafted segment before the packet's verdict rather
	// than after it.
	Before bool
}

// Decision is what a Decider tells the engine to do with one packet. The
// engine zeroes it before each Decide call; the zero Decision accepts the
// packet unchanged, at once.
type Decision struct {
	// Verdict is the verdict for the packet itself.
	Verdict Verdict
	// Delay holds the packet this long before its verdict is given (at
	// most MaxDelay).
	Delay time.Duration
	// HoldKey, when non-zero, holds the packet until a later Decision
	// names the same key in Releases, or for at most Delay (Config.MaxHold
	// when Delay is zero).
	HoldKey uint64
	// Releases lists keys whose held packets are released right after
	// this packet's own verdict, so they leave behind it; NReleases says
	// how many of the array are used (see AddRelease).
	Releases  [MaxReleases]uint64
	NReleases int
	// Token, when non-zero, names a held or delayed packet to the
	// Decider: if it implements HoldObserver, the engine tells it when the
	// packet leaves and why (released, due, refused, shutdown).
	Token uint64
	// Modified says the Decider rewrote Packet.Data in place: the engine
	// accepts the rewritten bytes.
	Modified bool
	// RepairChecksums asks the engine to recompute the checksums of a
	// Modified packet from scratch, making a corrupt segment valid; without
	// it a rewrite keeps a bad checksum bad.
	RepairChecksums bool
	// Rewrote says in words what was rewritten (for the log).
	Rewrote string
	// LogDstPort, when non-zero, is the TCP destination port the
	// recorder is shown instead of the one the packet leaves with: a
	// port translation (mitigate's timewait-guard) logs both directions
	// from the device's side.
	LogDstPort uint16
	// Duplicates sends this many copies of the packet after it, DupGap
	// apart (the first copy DupGap after the original).
	Duplicates int
	DupGap     time.Duration
	// Injects lists crafted segments to send; NInjects says how many of
	// the array are used.
	Injects  [MaxInjects]Inject
	NInjects int
	// Rule names the rule that decided, "" for the default.
	Rule string
	// Action names what the rule did, in the rule language's words
	// ("pass", "drop", "delay", ...); "" means "pass".
	Action string
	// Conn is the tracker's connection id (0 when untracked).
	Conn uint64
	// Dir names the direction in the experiment's roles, e.g.
	// "client>device"; "" when no roles are known.
	Dir string
}

// AddInject appends a crafted segment to d; it reports false when d holds
// MaxInjects already.
func (d *Decision) AddInject(in Inject) bool {
	if d.NInjects >= MaxInjects {
		return false
	}
	d.Injects[d.NInjects] = in
	d.NInjects++
	return true
}

// AddRelease adds a key to release; it reports false when d holds
// MaxReleases already.
func (d *Decision) AddRelease(key uint64) bool {
	if d.NReleases >= MaxReleases {
		return false
	}
	d.Releases[d.NReleases] = key
	d.NReleases++
	return true
}

// Leave says why a held packet left the engine.
type Leave uint8

// Reasons a held packet leaves.
const (
	LeftReleased Leave = iota // a later Decision released its key
	LeftDue                   // its Delay (or the hold's bound) passed
	LeftOverflow              // never held: every slot was busy, so its verdict was given at once
	LeftShutdown              // the engine stopped and let it go
)

// String names the reason.
func (l Leave) String() string {
	switch l {
	case LeftReleased:
		return "released"
	case LeftDue:
		return "due"
	case LeftOverflow:
		return "overflow"
	case LeftShutdown:
		return "shutdown"
	}
	return "leave(" + itoa(int(l)) + ")"
}

// HoldObserver is implemented by Deciders that need to know when a packet
// they held or delayed (Decision.Token non-zero) leaves: the engine owns
// the schedule, the Decider is told. Left is called from the engine's
// packet goroutine, after the packet's verdict was queued.
type HoldObserver interface {
	Left(token uint64, how Leave, at time.Time)
}

// Decider decides the fate of each queued packet. The engine calls Decide
// from one goroutine, in the order packets arrive, with d zeroed; Decide
// must not keep p or p.Data after it returns and must not block.
type Decider interface {
	Decide(p *Packet, d *Decision)
}

// InjectObserver is implemented by Deciders that want to see the segments
// the engine crafted and sent (for example to track them). The engine calls
// Injected from its packet goroutine.
type InjectObserver interface {
	Injected(seg *segment.Segment, at time.Time)
}

// Observe is the Decider that accepts every packet unchanged.
type Observe struct{}

// Decide accepts the packet.
func (Observe) Decide(*Packet, *Decision) {}

func itoa(v int) string {
	if v == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := v < 0
	if neg {
		v = -v
	}
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
