package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"time"

	"github.com/closeduel/closeduel/bridgehook"
	"github.com/closeduel/closeduel/nfq"
	"github.com/closeduel/closeduel/verdictlog"
)

// DefaultQueue is the NFQUEUE number the lab's engine binds (queues are
// per namespace, so two labs do not collide).
const DefaultQueue = 7

// Engine is the Inline that puts closeduel's engine on the lab's bridge:
// the verdict log (verdicts.jsonl and capture.pcapng in the run
// directory), the NFQUEUE engine with Decider, and the iptables hook that
// queues the client's and the device's TCP.
type Engine struct {
	// Decider decides every segment (nil: observe only).
	Decider nfq.Decider
	// Rules, RulesSHA256 and Experiment describe the rule file for the
	// verdict log ("" when observing only).
	Rules, RulesSHA256, Experiment string
	// Version is closeduel's version for the log's header.
	Version string
	// Queue is the NFQUEUE number (default DefaultQueue).
	Queue uint16
	// Mitigations names the middlebox mitigations the Decider starts with,
	// for the verdict log.
	Mitigations []string
	// Summary, when set, turns the engine's final statistics into the
	// verdict log's summary record.
	Summary func(nfq.Snapshot) map[string]uint64

	mu     sync.Mutex
	vlog   *verdictlog.Writer
	engine *nfq.Engine
	hook   *bridgehook.Hook
	cancel context.CancelFunc
	done   chan error
	final  nfq.Snapshot
}

// Start implements Inline.
func (e *Engine) Start(ctx context.Context, env InlineEnv) error {
	decider := e.Decider
	if decider == nil {
		decider = nfq.Observe{}
	}
	queue := e.Queue
	if queue == 0 {
		queue = DefaultQueue
	}
	vlog, err := verdictlog.Open(verdictlog.Config{
		JSONPath: filepath.Join(env.Dir, FileVerdicts), PcapPath: filepath.Join(env.Dir, FileCapture),
		SnapLen: verdictlog.DefaultSnapLen, Buffer: 16384, Version: e.Version,
	})
	if err != nil {
		return fmt.Errorf("lab: verdict log: %w", err)
	}
	if e.Rules != "" {
		vlog.RulesLoaded(time.Now(), e.Rules, e.RulesSHA256, e.Experiment)
	}
	for _, m := range e.Mitigations {
		vlog.Mitigation(time.Now(), m, true)
	}
	var rec nfq.Recorder = vlog
	if env.Observe != nil {
		rec = teeRecorder{vlog, env.Observe}
	}
	engine, err := nfq.Open(nfq.Config{Queue: queue, NetNS: env.NetNS, Decider: decider, Recorder: rec})
	if err != nil {
		return errors.Join(fmt.Errorf("lab: engine: %w", err), vlog.Close())
	}
	hosts := []netip.Prefix{netip.PrefixFrom(env.Client, env.Client.BitLen()), netip.PrefixFrom(env.Device, env.Device.BitLen())}
	hook, err := bridgehook.Install(ctx, bridgehook.Config{NetNS: env.NetNS, Queue: queue, Bridge: env.Bridge, Hosts: hosts})
	if err != nil {
		return errors.Join(fmt.Errorf("lab: hook: %w", err), engine.Close(), vlog.Close())
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- engine.Run(runCtx) }()
	e.mu.Lock()
	e.vlog, e.engine, e.hook, e.cancel, e.done = vlog, engine, hook, cancel, done
	e.mu.Unlock()
	return nil
}

// Counts implements Inline.
func (e *Engine) Counts() (uint64, map[string]uint64) {
	e.mu.Lock()
	engine := e.engine
	e.mu.Unlock()
	if engine == nil {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.final.Packets, e.final.ByAction
	}
	s := engine.Stats()
	return s.Packets, s.ByAction
}

// Stop implements Inline: the hook goes first so nothing new is queued,
// then the engine releases what it holds and the log is flushed.
func (e *Engine) Stop() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.engine == nil {
		return nil
	}
	errs := []error{e.hook.Remove()}
	e.cancel()
	if err := <-e.done; err != nil {
		errs = append(errs, fmt.Errorf("lab: engine: %w", err))
	}
	stats := e.engine.Stats()
	e.final = stats
	errs = append(errs, e.engine.Close())
	if e.Summary != nil {
		e.vlog.Summary(e.Summary(stats))
	}
	errs = append(errs, e.vlog.Close())
	e.engine = nil
	return errors.Join(errs...)
}

// MitigationSwitcher is a Decider whose mitigations can be switched at
// run time (rules.Decider).
type MitigationSwitcher interface {
	SetMitigation(name string, on bool) (changed bool, err error)
}

// SetMitigation switches a mitigation of the running Decider and records
// the switch in the verdict log.
func (e *Engine) SetMitigation(name string, on bool) error {
	sw, ok := e.Decider.(MitigationSwitcher)
	if !ok {
		return fmt.Errorf("lab: the inline Decider has no mitigations")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.engine == nil {
		return fmt.Errorf("lab: the engine is not running")
	}
	changed, err := sw.SetMitigation(name, on)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if changed {
		e.vlog.Mitigation(time.Now(), name, on)
	}
	return nil
}

// teeRecorder hands every event to two recorders, the verdict log first.
type teeRecorder [2]nfq.Recorder

// Record implements nfq.Recorder.
func (t teeRecorder) Record(ev *nfq.Event) {
	t[0].Record(ev)
	t[1].Record(ev)
}
