package nfq

import (
	"context"
	"errors"
	"sync"
)

// Group is one engine per queue, Queue to Queue+n-1, each on its own
// thread, sharing the Config's Decider (see lockedDecider) and Recorder
// (which must be safe for concurrent use, as verdictlog.Writer is). The
// hook must keep each connection on one queue (bridgehook.Config.Queues),
// so that holds and their releases meet in one engine.
type Group struct {
	engines []*Engine
}

// OpenGroup binds n queues (at least one) with cfg.
func OpenGroup(cfg Config, n int) (*Group, error) {
	n = max(n, 1)
	if n > 1 {
		d := cfg.Decider
		if d == nil {
			d = Observe{}
		}
		cfg.Decider = &lockedDecider{d: d}
	}
	g := &Group{}
	for i := range n {
		c := cfg
		c.Queue = cfg.Queue + uint16(i)
		e, err := Open(c)
		if err != nil {
			g.Close()
			return nil, err
		}
		g.engines = append(g.engines, e)
	}
	return g, nil
}

// Run runs every engine until ctx is done (see Engine.Run) and returns
// their errors joined.
func (g *Group) Run(ctx context.Context) error {
	errs := make([]error, len(g.engines))
	var wg sync.WaitGroup
	for i, e := range g.engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.Run(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Stats returns the sum of the engines' snapshots.
func (g *Group) Stats() Snapshot {
	var s Snapshot
	for _, e := range g.engines {
		s.sum(e.Stats())
	}
	return s
}

// SetCopyRange sets every engine's copy range.
func (g *Group) SetCopyRange(n uint32) error {
	var errs []error
	for _, e := range g.engines {
		errs = append(errs, e.SetCopyRange(n))
	}
	return errors.Join(errs...)
}

// Close closes every engine.
func (g *Group) Close() error {
	var errs []error
	for _, e := range g.engines {
		errs = append(errs, e.Close())
	}
	return errors.Join(errs...)
}
