package nfq

import (
	"sync"
	"time"

	"github.com/closeduel/closeduel/segment"
)

// lockedDecider lets several engines share one Decider: every call into
// it holds one lock. Deciding is a small part of a packet's cost (the
// verdict's trip through the kernel is most of it), so engines on their
// own threads still overlap in the rest. It passes on InjectObserver and
// HoldObserver calls when the Decider implements them.
type lockedDecider struct {
	mu sync.Mutex
	d  Decider
}

func (l *lockedDecider) Decide(p *Packet, d *Decision) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.d.Decide(p, d)
}

func (l *lockedDecider) Injected(seg *segment.Segment, at time.Time) {
	if obs, ok := l.d.(InjectObserver); ok {
		l.mu.Lock()
		defer l.mu.Unlock()
		obs.Injected(seg, at)
	}
}

func (l *lockedDecider) Left(token uint64, how Leave, at time.Time) {
	if obs, ok := l.d.(HoldObserver); ok {
		l.mu.Lock()
		defer l.mu.Unlock()
		obs.Left(token, how, at)
	}
}

// sum adds o's counters to s.
func (s *Snapshot) sum(o Snapshot) {
	s.Packets += o.Packets
	s.NonTCP += o.NonTCP
	s.Malformed += o.Malformed
	s.BadMessages += o.BadMessages
	s.Accepted += o.Accepted
	s.Dropped += o.Dropped
	s.Modified += o.Modified
	s.Held += o.Held
	s.Released += o.Released
	s.HoldOverflow += o.HoldOverflow
	s.Duplicated += o.Duplicated
	s.Injected += o.Injected
	s.SendFailed += o.SendFailed
	s.DeciderPanic += o.DeciderPanic
	s.VerdictErrs += o.VerdictErrs
	s.Batches += o.Batches
	s.Cut += o.Cut
	s.CutNeedsWhole += o.CutNeedsWhole
	s.SpinHits += o.SpinHits
	s.SpinMisses += o.SpinMisses
	s.HeldNow += o.HeldNow
	s.KernelQueueDropped += o.KernelQueueDropped
	s.KernelUserDropped += o.KernelUserDropped
	s.KernelQueueTotal += o.KernelQueueTotal
	if s.ByAction == nil {
		s.ByAction = make(map[string]uint64)
	}
	for k, v := range o.ByAction {
		s.ByAction[k] += v
	}
}
