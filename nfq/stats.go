package nfq

import "sync/atomic"

// Stats counts what the engine did. Every field is read and written
// atomically: Stats may be read while the engine runs.
type Stats struct {
	Packets      atomic.Uint64 // queued packets received
	NonTCP       atomic.Uint64 // accepted without a decision: not TCP
	Malformed    atomic.Uint64 // accepted without a decision: undecodable
	BadMessages  atomic.Uint64 // netlink messages that were not packets and could not be parsed
	Accepted     atomic.Uint64 // verdict accept (including after a hold)
	Dropped      atomic.Uint64 // verdict drop
	Modified     atomic.Uint64 // accepted with rewritten bytes
	Held         atomic.Uint64 // packets held before their verdict
	Released     atomic.Uint64 // held packets that got their verdict
	HoldOverflow atomic.Uint64 // holds refused because every slot was busy (verdict given at once)
	Duplicated   atomic.Uint64 // copies sent
	Injected     atomic.Uint64 // crafted segments sent
	SendFailed   atomic.Uint64 // copies or crafted segments that could not be sent
	DeciderPanic atomic.Uint64 // packets whose Decider panicked (accepted unchanged)
	VerdictErrs  atomic.Uint64 // errors the kernel returned for verdicts
	Batches      atomic.Uint64 // receive calls that returned packets
	SpinHits     atomic.Uint64 // batches found by polling without sleeping (Config.Spin)
	SpinMisses   atomic.Uint64 // polls that found nothing within Config.Spin (the engine then slept)
	Cut          atomic.Uint64 // packets that arrived cut to the copy range
	// CutNeedsWhole counts decisions to rewrite or duplicate a packet that
	// arrived cut: they were carried out without the rewrite or copies.
	CutNeedsWhole atomic.Uint64
}

// Snapshot is a plain copy of Stats plus the kernel's queue counters.
type Snapshot struct {
	Packets, NonTCP, Malformed, BadMessages uint64
	Accepted, Dropped, Modified             uint64
	Held, Released, HoldOverflow            uint64
	Duplicated, Injected, SendFailed        uint64
	DeciderPanic, VerdictErrs, Batches      uint64
	Cut, CutNeedsWhole                      uint64
	SpinHits, SpinMisses                    uint64
	HeldNow                                 int
	KernelQueueDropped, KernelUserDropped   uint64 // from /proc/net/netfilter/nfnetlink_queue
	KernelQueueTotal                        uint64 // packets waiting in the kernel queue
	// FailOpen is how many packets the kernel let past a full queue
	// (fail-open), which the kernel does not count: the hook's matched
	// count minus the packets queued. The engine cannot see it; whoever
	// reads the hook's counters fills it in (closeduel run, at its end).
	FailOpen uint64
	ByAction map[string]uint64
}

func (s *Stats) snapshot() Snapshot {
	return Snapshot{
		Packets: s.Packets.Load(), NonTCP: s.NonTCP.Load(), Malformed: s.Malformed.Load(),
		BadMessages: s.BadMessages.Load(), Accepted: s.Accepted.Load(), Dropped: s.Dropped.Load(),
		Modified: s.Modified.Load(), Held: s.Held.Load(), Released: s.Released.Load(),
		HoldOverflow: s.HoldOverflow.Load(), Duplicated: s.Duplicated.Load(), Injected: s.Injected.Load(),
		SendFailed: s.SendFailed.Load(), DeciderPanic: s.DeciderPanic.Load(), VerdictErrs: s.VerdictErrs.Load(),
		Batches: s.Batches.Load(), Cut: s.Cut.Load(), CutNeedsWhole: s.CutNeedsWhole.Load(),
		SpinHits: s.SpinHits.Load(), SpinMisses: s.SpinMisses.Load(),
	}
}

// actionCounts counts verdicts by the Decision's action word. The set of
// words is small and fixed by the rule language, so a short table with
// linear lookup beats a map and never allocates after the first sighting.
type actionCounts struct {
	names  [32]atomic.Pointer[string]
	counts [32]atomic.Uint64
	n      atomic.Int32
}

func (a *actionCounts) add(name string) {
	if name == "" {
		name = "pass"
	}
	n := int(a.n.Load())
	for i := 0; i < n; i++ {
		if *a.names[i].Load() == name {
			a.counts[i].Add(1)
			return
		}
	}
	if n == len(a.names) {
		a.counts[len(a.counts)-1].Add(1) // "other"
		return
	}
	s := name
	a.names[n].Store(&s)
	a.counts[n].Add(1)
	a.n.Store(int32(n + 1))
}

func (a *actionCounts) snapshot() map[string]uint64 {
	out := make(map[string]uint64)
	n := int(a.n.Load())
	for i := 0; i < n; i++ {
		out[*a.names[i].Load()] = a.counts[i].Load()
	}
	return out
}
