package nfq

import (
	"time"

	"github.com/closeduel/closeduel/segment"
	"github.com/closeduel/closeduel/vlanmark"
)

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds.
const (
	// EventVerdict: a queued packet got its verdict.
	EventVerdict EventKind = iota
	// EventDuplicate: the engine sent a copy of a queued packet.
	EventDuplicate
	// EventInjected: the engine sent a crafted segment.
	EventInjected
)

// String names the kind as the verdict log does.
func (k EventKind) String() string {
	switch k {
	case EventVerdict:
		return "verdict"
	case EventDuplicate:
		return "duplicate"
	case EventInjected:
		return "injected"
	}
	return "event(" + itoa(int(k)) + ")"
}

// Event reports one thing the engine did to the traffic. Every pointer and
// slice in it is valid only during the Recorder call.
type Event struct {
	Kind EventKind
	// Arrived is when the queued packet was received (for EventInjected,
	// when the packet that caused the injection was received).
	Arrived time.Time
	// Left is when the verdict was given or the frame sent.
	Left time.Time
	// PacketID is the kernel's id of the queued packet concerned.
	PacketID uint32
	// Verdict is the final verdict (EventVerdict only).
	Verdict Verdict
	// Decision is the decision that produced the event.
	Decision *Decision
	// Data is the IP packet as it left (rewritten, duplicated or crafted);
	// for a dropped packet, as it arrived. OrigLen is its full length when
	// Data was cut short.
	Data    []byte
	OrigLen int
	// Seg is the decoded segment of Data, TCP false when Data is not TCP.
	Seg segment.Segment
	TCP bool
	// VLAN is the VLAN tag of the queued packet concerned (see
	// Packet.VLAN); for EventInjected, the tag the crafted frame carried.
	VLAN vlanmark.Tag
	// DstMAC and SrcMAC are the Ethernet addresses of a tagged frame (the
	// verdict log writes tagged packets as Ethernet frames): for a queued
	// packet, those the engine learned for its addresses from the traffic
	// (the queue hands over the IP packet only), zero while not learned;
	// for a copy or a crafted segment, those it was sent with. Zero for
	// untagged packets.
	DstMAC, SrcMAC [6]byte
}

// Recorder receives every Event. Record is called from the engine's packet
// goroutine: it must copy what it keeps and must never block.
type Recorder interface {
	Record(ev *Event)
}
