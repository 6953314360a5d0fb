package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/closeduel/closeduel/bridgehook"
	"github.com/closeduel/closeduel/nfq"
	"github.com/closeduel/closeduel/verdictlog"
)

// runCommand is `closeduel run`: the engine inline on a bridge.
func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "sit inline on a bridge and give every packet a verdict",
		Description: `Binds an NFQUEUE, installs an iptables chain that sends bridged TCP to it
(--hook bridge, the default), decides every segment (observe-only unless --rules
is given), logs every verdict, and on SIGINT/SIGTERM or after --duration removes
its rules, releases every held packet, flushes the logs and prints a summary.`,
		Flags: []cli.Flag{
			&cli.UintFlag{Name: "queue", Value: 7, Usage: "NFQUEUE number"},
			&cli.StringFlag{Name: "hook", Value: "bridge", Usage: "bridge: install the iptables chain; none: print the rules and leave them to you"},
			&cli.StringFlag{Name: "bridge", Usage: "queue only traffic bridged by this bridge (default: every bridge)"},
			&cli.StringSliceFlag{Name: "host", Usage: "queue only TCP between these addresses or prefixes (repeat; default: the rule file's hosts, else all)"},
			&cli.StringFlag{Name: "netns", Usage: "run in this named network namespace (as `ip netns` lists it)"},
			&cli.StringFlag{Name: "rules", Usage: "rule file driving the verdicts (default: observe only)"},
			&cli.StringFlag{Name: "log", Usage: "JSON Lines verdict log to write"},
			&cli.StringFlag{Name: "pcap", Usage: "pcapng capture to write, with the verdict as each packet's comment"},
			&cli.IntFlag{Name: "snaplen", Value: verdictlog.DefaultSnapLen, Usage: "bytes of each packet kept in the pcapng"},
			&cli.BoolFlag{Name: "force", Usage: "overwrite existing log and capture files"},
			&cli.DurationFlag{Name: "duration", Usage: "stop after this long (default: until SIGINT/SIGTERM)"},
		},
		Action: func(c *cli.Context) error {
			opts := runOptions{
				Queue:    uint16(c.Uint("queue")),
				Hook:     c.String("hook"),
				Bridge:   c.String("bridge"),
				NetNS:    c.String("netns"),
				Rules:    c.String("rules"),
				LogPath:  c.String("log"),
				PcapPath: c.String("pcap"),
				SnapLen:  c.Int("snaplen"),
				Force:    c.Bool("force"),
				Duration: c.Duration("duration"),
			}
			for _, h := range c.StringSlice("host") {
				p, err := parseHost(h)
				if err != nil {
					return err
				}
				opts.Hosts = append(opts.Hosts, p)
			}
			if c.Uint("queue") > 65535 {
				return fmt.Errorf("run: --queue %d: a queue number is 0..65535", c.Uint("queue"))
			}
			return runInline(c.Context, opts, c.App.Writer)
		},
	}
}

// runOptions are the settings of one inline run.
type runOptions struct {
	Queue             uint16
	Hook              string
	Bridge            string
	Hosts             []netip.Prefix
	NetNS             string
	Rules             string
	LogPath, PcapPath string
	SnapLen           int
	Force             bool
	Duration          time.Duration
}

func parseHost(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("run: --host %q: want an IP address or a prefix such as 192.168.100.0/24", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// runInline runs the engine until ctx is done or the duration passes, and
// prints the summary to out.
func runInline(ctx context.Context, o runOptions, out io.Writer) (err error) {
	if o.Hook != "bridge" && o.Hook != "none" {
		return fmt.Errorf("run: --hook %q: want bridge or none", o.Hook)
	}
	decider, rulesInfo, err := loadDecider(o.Rules)
	if err != nil {
		return err
	}
	if len(o.Hosts) == 0 {
		o.Hosts = rulesInfo.hosts
	}

	var recorder nfq.Recorder
	var vlog *verdictlog.Writer
	if o.LogPath != "" || o.PcapPath != "" {
		vlog, err = verdictlog.Open(verdictlog.Config{
			JSONPath: o.LogPath, PcapPath: o.PcapPath, SnapLen: o.SnapLen,
			Buffer: 16384, Version: version, Overwrite: o.Force,
		})
		if err != nil {
			return fmt.Errorf("run: %w", err)
		}
		recorder = vlog
		if o.Rules != "" {
			vlog.RulesLoaded(time.Now(), o.Rules, rulesInfo.sha256, rulesInfo.experiment)
		}
	}

	engine, err := nfq.Open(nfq.Config{Queue: o.Queue, NetNS: o.NetNS, Decider: decider, Recorder: recorder})
	if err != nil {
		if vlog != nil {
			vlog.Close()
		}
		return fmt.Errorf("run: %w", err)
	}

	hookCfg := bridgehook.Config{NetNS: o.NetNS, Queue: o.Queue, Bridge: o.Bridge, Hosts: o.Hosts}
	var hook *bridgehook.Hook
	if o.Hook == "bridge" {
		hook, err = bridgehook.Install(ctx, hookCfg)
		if err != nil {
			engine.Close()
			if vlog != nil {
				vlog.Close()
			}
			return fmt.Errorf("run: %w", err)
		}
	} else {
		if err := bridgehook.CheckBridgeNetfilter(o.NetNS); err != nil {
			fmt.Fprintf(out, "warning: %v\n", err)
		}
		fmt.Fprintln(out, "--hook none: install rules like these yourself:")
		for _, l := range hookCfg.Describe() {
			fmt.Fprintln(out, "  "+l)
		}
	}

	runCtx, cancelRun := context.WithCancel(context.Background())
	done := make(chan error, 1)
	started := time.Now()
	go func() { done <- engine.Run(runCtx) }()
	fmt.Fprintf(out, "closeduel %s: queue %d inline (%s), %s\n", version, o.Queue, describeHook(o, hookCfg), rulesInfo.describe())

	var timeout <-chan time.Time
	if o.Duration > 0 {
		timer := time.NewTimer(o.Duration)
		defer timer.Stop()
		timeout = timer.C
	}
	var runErr error
	select {
	case <-ctx.Done():
	case <-timeout:
	case runErr = <-done:
		done <- runErr
	}

	// Shutdown: the rule goes first so no new packet is queued, then the
	// engine drains the queue and releases what it holds.
	var errs []error
	if runErr != nil {
		errs = append(errs, fmt.Errorf("run: engine: %w", runErr))
	}
	errs = append(errs, hook.Remove())
	cancelRun()
	if rerr := <-done; rerr != nil && runErr == nil {
		errs = append(errs, fmt.Errorf("run: engine: %w", rerr))
	}
	stats := engine.Stats()
	errs = append(errs, engine.Close())
	var lost uint64
	if vlog != nil {
		vlog.Summary(summaryFields(stats))
		errs = append(errs, vlog.Close())
		lost = vlog.Stats().Lost
	}
	printSummary(out, stats, time.Since(started), lost, vlog != nil)
	return errors.Join(errs...)
}

func describeHook(o runOptions, cfg bridgehook.Config) string {
	if o.Hook == "none" {
		return "rules left to you"
	}
	where := "every bridge"
	if o.Bridge != "" {
		where = o.Bridge
	}
	if o.NetNS != "" {
		where += " in netns " + o.NetNS
	}
	return "iptables chain " + cfg.Chain() + " on " + where
}

// summaryFields turns a snapshot into the verdict log's summary record.
func summaryFields(s nfq.Snapshot) map[string]uint64 {
	m := map[string]uint64{
		"packets": s.Packets, "accepted": s.Accepted, "dropped": s.Dropped, "modified": s.Modified,
		"held": s.Held, "released": s.Released, "hold_overflow": s.HoldOverflow,
		"duplicated": s.Duplicated, "injected": s.Injected, "send_failed": s.SendFailed,
		"non_tcp": s.NonTCP, "malformed": s.Malformed, "bad_messages": s.BadMessages,
		"decider_panics": s.DeciderPanic, "verdict_errors": s.VerdictErrs,
		"kernel_queue_dropped": s.KernelQueueDropped, "kernel_user_dropped": s.KernelUserDropped,
	}
	for a, n := range s.ByAction {
		m["action_"+a] = n
	}
	return m
}

// printSummary writes the end-of-run summary for people.
func printSummary(out io.Writer, s nfq.Snapshot, elapsed time.Duration, lost uint64, logging bool) {
	fmt.Fprintf(out, "\nsummary after %v\n", elapsed.Round(time.Millisecond))
	fmt.Fprintf(out, "  packets        %d (non-TCP %d, malformed %d, passed unchanged)\n", s.Packets, s.NonTCP, s.Malformed)
	fmt.Fprintf(out, "  verdicts       accept %d (rewritten %d), drop %d\n", s.Accepted, s.Modified, s.Dropped)
	var actions []string
	for a := range s.ByAction {
		actions = append(actions, a)
	}
	sort.Strings(actions)
	parts := make([]string, 0, len(actions))
	for _, a := range actions {
		parts = append(parts, fmt.Sprintf("%s %d", a, s.ByAction[a]))
	}
	if len(parts) > 0 {
		fmt.Fprintf(out, "  by action      %s\n", strings.Join(parts, ", "))
	}
	fmt.Fprintf(out, "  held           %d, released %d, still held 0, refused (full) %d\n", s.Held, s.Released, s.HoldOverflow)
	fmt.Fprintf(out, "  sent           duplicates %d, injected %d, failed %d\n", s.Duplicated, s.Injected, s.SendFailed)
	fmt.Fprintf(out, "  kernel queue   dropped %d (queue full), user dropped %d (socket full)\n", s.KernelQueueDropped, s.KernelUserDropped)
	if logging {
		fmt.Fprintf(out, "  log records    lost %d\n", lost)
	}
	if s.DeciderPanic > 0 || s.VerdictErrs > 0 || s.BadMessages > 0 {
		fmt.Fprintf(out, "  errors         decider panics %d, verdict errors %d, bad messages %d\n", s.DeciderPanic, s.VerdictErrs, s.BadMessages)
	}
}

// rulesSummary is what run needs to know of a loaded rule file.
type rulesSummary struct {
	experiment, sha256 string
	hosts              []netip.Prefix
}

func (r rulesSummary) describe() string {
	if r.experiment == "" {
		return "observing only"
	}
	return "experiment " + r.experiment
}

// loadDecider returns the Decider for a rule file, or the observer when
// path is empty.
func loadDecider(path string) (nfq.Decider, rulesSummary, error) {
	if path == "" {
		return nfq.Observe{}, rulesSummary{}, nil
	}
	if _, err := os.Stat(path); err != nil {
		return nil, rulesSummary{}, fmt.Errorf("run: --rules: %w", err)
	}
	return nil, rulesSummary{}, errors.New("run: --rules: the rule language is not built yet")
}
