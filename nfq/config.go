package nfq

import "time"

// Config configures an Engine. Zero values mean the defaults documented on
// each field.
type Config struct {
	// Queue is the NFQUEUE number to bind.
	Queue uint16
	// NetNS names the network namespace (as `ip netns` knows it) whose
	// queue to bind and whose bridge ports to inject on; "" is ours.
	NetNS string
	// Decider decides each packet; nil observes (accepts everything).
	Decider Decider
	// Recorder receives every event; nil records nothing.
	Recorder Recorder
	// QueueMaxLen is the kernel queue length; default 4096. With fail-open
	// the kernel accepts packets unqueued when the queue is full.
	QueueMaxLen uint32
	// MaxHeld bounds the packets held at once (delays, holds); default
	// 2048. A hold beyond it gets its verdict at once and is counted.
	MaxHeld int
	// MaxHold bounds how long a HoldKey hold waits for its release;
	// default 5 s.
	MaxHold time.Duration
	// ReceiveBuffer is the netlink socket's receive buffer in bytes;
	// default 8 MiB.
	ReceiveBuffer int
	// Batch is how many queued packets one receive call may return;
	// default 64.
	Batch int
	// CopyRange is how many bytes of each packet the kernel copies to
	// the engine; 0 means the whole packet. A cut packet is decided as
	// usual (the segment's lengths come from its headers), but it cannot
	// be rewritten or duplicated: such a decision is carried out without
	// the rewrite or the copies and counted in Stats.CutNeedsWhole.
	// HeaderRange covers the headers of every packet the rules can match.
	CopyRange uint32
	// RealtimePriority, when above zero, runs the packet thread under
	// SCHED_FIFO at this priority (1..99) while Run runs: held packets
	// then leave on time even on a loaded machine, whose other threads
	// would otherwise delay the thread's timer by milliseconds. The
	// thread blocks in the kernel between packets, and the kernel's
	// real-time throttling bounds it; 0 leaves the normal scheduler.
	RealtimePriority int
	// BusyPoll, when above zero, makes the engine poll the queue without
	// sleeping for up to this long after a batch, as long as the batches
	// before came at most this far apart: packets that follow each other
	// closely (request/response, connection churn) are then taken without
	// a wake-up of the engine's thread each, at the cost of that thread's
	// CPU while it polls. An idle queue is never polled: a poll that finds
	// nothing ends it until packets come close together again. Stats count
	// the batches polling found (SpinHits) and the polls that found none
	// (SpinMisses). 0 sleeps between batches.
	BusyPoll time.Duration
	// DrainQuiet is how long the queue must stay empty at shutdown before
	// the engine unbinds; default 30 ms (at most 1 s of draining).
	DrainQuiet time.Duration
}

// HeaderRange is a copy range that holds every IPv4 or IPv6 header with
// the extension headers the decoder follows, and any TCP header.
const HeaderRange = 256

// MaxCopyRange is the largest copy range: a whole 64 KiB (GSO) packet.
const MaxCopyRange = 0xffff

func (c *Config) fill() {
	if c.Decider == nil {
		c.Decider = Observe{}
	}
	if c.QueueMaxLen == 0 {
		c.QueueMaxLen = 4096
	}
	if c.MaxHeld <= 0 {
		c.MaxHeld = 2048
	}
	if c.MaxHold <= 0 {
		c.MaxHold = 5 * time.Second
	}
	if c.ReceiveBuffer <= 0 {
		c.ReceiveBuffer = 8 << 20
	}
	if c.Batch <= 0 {
		c.Batch = 64
	}
	if c.CopyRange == 0 || c.CopyRange > MaxCopyRange {
		c.CopyRange = MaxCopyRange
	}
	if c.DrainQuiet <= 0 {
		c.DrainQuiet = 30 * time.Millisecond
	}
}
