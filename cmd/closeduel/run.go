package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/closeduel/closeduel/analysis"
	"github.com/closeduel/closeduel/bridgehook"
	"github.com/closeduel/closeduel/control"
	"github.com/closeduel/closeduel/metrics"
	"github.com/closeduel/closeduel/mitigate"
	"github.com/closeduel/closeduel/nfq"
	"github.com/closeduel/closeduel/rules"
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
its rules, releases every held packet, flushes the logs and prints a summary.
Operational messages go to standard error through the log (--log-format,
--log-level); the summary goes to standard output. It needs CAP_NET_ADMIN (the
queue, iptables) and CAP_NET_RAW (injected and duplicated segments), and
CAP_SYS_ADMIN with --netns, and refuses to start without them, naming the one
missing. A rule file is a regular file of at most 1 MiB and 1000 rules
(--allow-pipe also reads a FIFO or pipe).` + examples(
			"closeduel run --bridge br0 --host 192.168.100.1 --host 192.168.100.99 --log verdicts.jsonl --pcap capture.pcapng",
			"closeduel run --netns cd-demo-bridge --rules lost-final-ack --duration 60s",
			"closeduel run --bridge br0 --vlan-tags --log verdicts.jsonl --pcap capture.pcapng",
			"CLOSEDUEL_RULES=/etc/closeduel/rules.yaml CLOSEDUEL_BRIDGE=br0 closeduel run",
		),
		Flags: []cli.Flag{
			&cli.UintFlag{Name: "queue", Value: 7, EnvVars: []string{"CLOSEDUEL_QUEUE"}, Usage: "NFQUEUE number"},
			&cli.IntFlag{Name: "queues", Value: 1, EnvVars: []string{"CLOSEDUEL_QUEUES"}, Usage: "spread connections over this many queues (--queue and the next ones), one engine thread each; each connection stays on one queue (an HMARK rule hashes its addresses and ports into the packets' firewall mark)"},
			&cli.BoolFlag{Name: "vlan-tags", EnvVars: []string{"CLOSEDUEL_VLAN_TAGS"}, Usage: "keep the VLAN id of 802.1Q- or 802.1ad-tagged frames in the verdict log (\"vlan\") and the capture: an nft rule (bridge family, table closeduel-<queue>) copies it into each hooked frame's firewall mark; needs the nft command and --queues 1"},
			&cli.StringFlag{Name: "hook", Value: "bridge", EnvVars: []string{"CLOSEDUEL_HOOK"}, Usage: "bridge: install the iptables chain; none: print the rules and leave them to you"},
			&cli.StringFlag{Name: "bridge", EnvVars: []string{"CLOSEDUEL_BRIDGE"}, Usage: "queue only traffic bridged by this bridge (default: every bridge)"},
			&cli.StringSliceFlag{Name: "host", EnvVars: []string{"CLOSEDUEL_HOSTS"}, Usage: "queue only TCP between these addresses or prefixes (repeat, or comma-separated in the variable; default: the rule file's hosts, else all)"},
			&cli.StringFlag{Name: "netns", EnvVars: []string{"CLOSEDUEL_NETNS"}, Usage: "run in this named network namespace (as ip netns lists it)"},
			&cli.StringFlag{Name: "rules", EnvVars: []string{"CLOSEDUEL_RULES"}, Usage: "rule file, or the name of a shipped experiment (closeduel rules lists them), driving the verdicts (default: observe and track only)"},
			&cli.BoolFlag{Name: "allow-pipe", EnvVars: []string{"CLOSEDUEL_ALLOW_PIPE"}, Usage: "let --rules be a FIFO or pipe (read to its end at each start and reload; a rule file is a regular file otherwise)"},
			&cli.StringFlag{Name: "control", EnvVars: []string{"CLOSEDUEL_CONTROL"}, Usage: "control socket for closeduel ctl (default /run/closeduel/queue-N.sock; \"off\" for none)"},
			&cli.StringFlag{Name: "log", EnvVars: []string{"CLOSEDUEL_LOG"}, Usage: "JSON Lines verdict log to write"},
			&cli.StringFlag{Name: "pcap", EnvVars: []string{"CLOSEDUEL_PCAP"}, Usage: "pcapng capture to write, with the verdict as each packet's comment"},
			&cli.IntFlag{Name: "snaplen", Value: verdictlog.DefaultSnapLen, EnvVars: []string{"CLOSEDUEL_SNAPLEN"}, Usage: "bytes of each packet kept in the pcapng"},
			&cli.BoolFlag{Name: "force", EnvVars: []string{"CLOSEDUEL_FORCE"}, Usage: "overwrite existing log and capture files"},
			&cli.DurationFlag{Name: "duration", EnvVars: []string{"CLOSEDUEL_DURATION"}, Usage: "stop after this long (default: until SIGINT/SIGTERM)"},
			&cli.StringFlag{Name: "metrics", EnvVars: []string{"CLOSEDUEL_METRICS"}, Usage: "serve Prometheus metrics at http://ADDR/metrics, ADDR as host:port (default: no listener)"},
			&cli.DurationFlag{Name: "busy-poll", Value: defaultBusyPoll, EnvVars: []string{"CLOSEDUEL_BUSY_POLL"}, Usage: "after a batch of packets, poll the queue without sleeping for up to this long while packets come at most this far apart (request/response and connection churn then pass without a wake-up of the packet thread each, for that thread's CPU while it polls; an idle queue is never polled); 0 sleeps between batches, at most 1ms; off by default when the process may run on one CPU only, where polling only keeps the packets it waits for from being sent"},
			&cli.IntFlag{Name: "rt-priority", EnvVars: []string{"CLOSEDUEL_RT_PRIORITY"}, Usage: "run the packet thread under SCHED_FIFO at this priority (1-99), so delays and holds end on time on a loaded host (default 0: the normal scheduler)"},
		},
		Action: func(c *cli.Context) error {
			opts := runOptions{
				Queue:    uint16(c.Uint("queue")),
				Hook:     c.String("hook"),
				Bridge:   c.String("bridge"),
				NetNS:    c.String("netns"),
				Rules:    c.String("rules"),
				Pipe:     c.Bool("allow-pipe"),
				Control:  c.String("control"),
				LogPath:  c.String("log"),
				PcapPath: c.String("pcap"),
				SnapLen:  c.Int("snaplen"),
				Force:    c.Bool("force"),
				Duration: c.Duration("duration"),
				Metrics:  c.String("metrics"),
				RTPrio:   c.Int("rt-priority"),
				BusyPoll: busyPollFor(c.IsSet("busy-poll"), c.Duration("busy-poll"), runtime.NumCPU()),
				Queues:   c.Int("queues"),
				VLANTags: c.Bool("vlan-tags"),
			}
			if opts.VLANTags && opts.Queues > 1 {
				return fmt.Errorf("run: --vlan-tags with --queues %d: %w", opts.Queues, bridgehook.ErrVLANTagsQueues)
			}
			if q := opts.Queues; q < 1 || q > 64 || int(opts.Queue)+q-1 > 65535 {
				return fmt.Errorf("run: --queues %d: want 1..64, ending at queue 65535 at most", q)
			}
			if d := opts.BusyPoll; d < 0 || d > time.Millisecond {
				return fmt.Errorf("run: --busy-poll %v: want 0 (off) to 1ms", d)
			}
			if p := opts.RTPrio; p < 0 || p > 99 {
				return fmt.Errorf("run: --rt-priority %d: want 1..99, or 0 for the normal scheduler", p)
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
			return runInline(c.Context, opts, c.App.Writer, logger(c))
		},
	}
}

// defaultBusyPoll is run's --busy-poll. Measured on the 2-CPU bench
// (closeduel run --log --pcap, interleaved rounds against the C anchor,
// load 3.8): request/response 10,015 transactions/s with it against 6,984
// without and 7,448 for the C anchor, its p99 round trip no longer; churn
// (all three under SCHED_FIFO, load 5.7) 4,109 connections/s against
// 3,299 and 2,997; bulk unchanged. The packet thread's CPU under
// request/response doubles (0.35 to 0.8 of a CPU): what it polls.
const defaultBusyPoll = 100 * time.Microsecond

// busyPollFor is the busy-poll a run uses: the flag's value when it was
// given, else the default, except with one CPU to run on (cpus, the
// process's affinity): there the packets the engine would poll for come
// from the same CPU's senders and softirqs, which a polling engine keeps
// off it. Measured with the whole bench on CPU 0 (taskset -c 0 closeduel
// bench, 3 rounds): request/response 6,505 transactions/s polling against
// 17,104 without and 19,273 for the C anchor, churn 2,122 against 3,273
// and 3,534.
func busyPollFor(given bool, flag time.Duration, cpus int) time.Duration {
	if !given && cpus < 2 {
		return 0
	}
	return flag
}

// runOptions are the settings of one inline run.
type runOptions struct {
	Queue             uint16
	Hook              string
	Bridge            string
	Hosts             []netip.Prefix
	NetNS             string
	Rules             string
	Pipe              bool // the rule file may be a FIFO or pipe
	Control           string
	LogPath, PcapPath string
	SnapLen           int
	Force             bool
	Duration          time.Duration
	RTPrio            int // SCHED_FIFO priority of the packet thread; 0: none
	BusyPoll          time.Duration
	Queues            int // queues Queue.. Queue+Queues-1, one engine each
	VLANTags          bool
	// Metrics is the address of the /metrics listener; "" for none.
	Metrics string
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
func runInline(ctx context.Context, o runOptions, out io.Writer, log *slog.Logger) (err error) {
	if o.Hook != "bridge" && o.Hook != "none" {
		return fmt.Errorf("run: --hook %q: want bridge or none", o.Hook)
	}
	if err := checkPrivileges(o.NetNS); err != nil {
		return err
	}
	ruleFile, err := loadRules(ctx, o.Rules, o.Pipe)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	if len(ruleFile.Lab) > 0 || len(ruleFile.Expect) > 0 {
		// Said once: a reload does not repeat it.
		fmt.Fprintf(out, "note: %s: the lab: and expect: sections are closeduel lab's; run ignores them\n", ruleFile.Path)
	}
	warnRules(log, ruleFile)
	decider := rules.NewDecider(ruleFile, rules.Options{})
	if len(o.Hosts) == 0 {
		o.Hosts = ruleHosts(ruleFile)
	}

	var recorder nfq.Recorder
	var vlog *verdictlog.Writer
	if o.LogPath != "" || o.PcapPath != "" {
		vlog, err = verdictlog.Open(verdictlog.Config{
			JSONPath: o.LogPath, PcapPath: o.PcapPath, SnapLen: o.SnapLen,
			Buffer: 16384, Version: version, Overwrite: o.Force,
			// A run's ring goes round within seconds of traffic: map it
			// now, not on the engine's thread (6,412 page faults there
			// in the first 3 s of request/response otherwise; perf stat).
			Prefault: true,
		})
		if err != nil {
			return fmt.Errorf("run: %w", err)
		}
		recorder = vlog
		vlog.RulesLoaded(time.Now(), ruleFile.Path, ruleFile.SHA256, ruleFile.Experiment)
		logMitigationsOn(vlog, decider)
	}

	var live *metrics.Live
	switches := &metrics.Switches{}
	if o.Metrics != "" {
		live = metrics.NewLive(0, liveAnalysis(decider))
		if recorder != nil {
			recorder = teeRecorder{recorder, live}
		} else {
			recorder = live
		}
	}

	engine, err := nfq.OpenGroup(nfq.Config{Queue: o.Queue, NetNS: o.NetNS, Decider: decider, Recorder: recorder,
		CopyRange: copyRange(ruleFile, o), RealtimePriority: o.RTPrio, BusyPoll: o.BusyPoll}, o.Queues)
	if err != nil {
		if vlog != nil {
			vlog.Close()
		}
		if inUse := queueInUse(o.NetNS, o.Queue); inUse != nil {
			return inUse
		}
		return fmt.Errorf("run: %w", err)
	}

	hookCfg := bridgehook.Config{NetNS: o.NetNS, Queue: o.Queue, Bridge: o.Bridge, Hosts: o.Hosts, Queues: o.Queues, VLANTags: o.VLANTags}
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
			log.Warn("bridged traffic will not reach the rules", "err", err)
		}
		printHookRecipe(out, hookCfg)
	}

	if o.Metrics != "" {
		src := metrics.Sources{
			Engine: engine.Stats, Rules: decider.Rules, Tracker: decider.TrackerStats,
			Live: live, Switches: switches, Version: version,
			Mitigations: decider.Mitigations, MitigationStats: decider.MitigationStats,
		}
		if vlog != nil {
			src.Log = vlog.Stats
		}
		msrv, err := metrics.Serve(o.Metrics, metrics.NewRegistry(metrics.NewCollector(src)))
		if err != nil {
			errs := []error{fmt.Errorf("run: %w", err), hook.Remove(), engine.Close()}
			if vlog != nil {
				errs = append(errs, vlog.Close())
			}
			return errors.Join(errs...)
		}
		defer msrv.Close()
		log.Info(fmt.Sprintf("metrics: http://%s/metrics", msrv.Addr()), "addr", msrv.Addr().String())
		liveCtx, stopLive := context.WithCancel(context.Background())
		liveDone := make(chan struct{})
		go func() { live.Run(liveCtx, 0); close(liveDone) }()
		defer func() { stopLive(); <-liveDone }()
	}

	// A reload waits at most until shutdown: reloadCtx ends first thing
	// then (deferred last), before the control server waits for its
	// commands.
	reloadCtx, cancelReload := context.WithCancelCause(context.Background())
	ctl := &controller{decider: decider, engine: engine, vlog: vlog, path: o.Rules, pipe: o.Pipe, log: log, ctx: reloadCtx, switches: switches, opts: o}
	var ctlServer *control.Server
	path := o.Control
	if path == "" {
		path = control.DefaultPath(o.Queue)
	}
	if o.Control != "off" {
		if ctlServer, err = control.Listen(path, ctl.handle); err != nil {
			log.Warn("no control socket", "path", path, "err", err)
		} else {
			defer ctlServer.Close()
		}
	}
	defer cancelReload(errors.New("the run is stopping"))
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	runCtx, cancelRun := context.WithCancel(context.Background())
	done := make(chan error, 1)
	started := time.Now()
	go func() { done <- engine.Run(runCtx) }()
	log.Info(fmt.Sprintf("closeduel %s: queue %d inline (%s), experiment %s", version, o.Queue, describeHook(o, hookCfg), ruleFile.Experiment),
		"queue", o.Queue, "experiment", ruleFile.Experiment)
	if ctlServer != nil {
		log.Info(fmt.Sprintf("control: closeduel ctl --queue %d enable|disable RULE, mitigation NAME on|off, reload, status", o.Queue), "socket", path)
	}

	var timeout <-chan time.Time
	if o.Duration > 0 {
		timer := time.NewTimer(o.Duration)
		defer timer.Stop()
		timeout = timer.C
	}
	var runErr error
	watch := &lossWatch{log: log, vlog: vlog, hook: hook}
	watchTick := time.NewTicker(time.Second)
	defer watchTick.Stop()
wait:
	for {
		select {
		case <-watchTick.C:
			watch.check(engine.Stats)
		case <-ctx.Done():
			break wait
		case <-timeout:
			break wait
		case runErr = <-done:
			done <- runErr
			break wait
		case <-hup:
			// The reload reads a file: never in this loop, which must
			// stay free to stop the run.
			go func() {
				msg, err := ctl.reload(reloadCtx)
				if err != nil {
					log.Error("SIGHUP: reload failed", "err", err)
				} else {
					log.Info("SIGHUP: " + msg)
				}
			}()
		}
	}
	cancelReload(errors.New("the run is stopping"))

	// Shutdown: the rule goes first so no new packet is queued, then the
	// engine drains the queue and releases what it holds.
	var errs []error
	if runErr != nil {
		errs = append(errs, fmt.Errorf("run: engine: %w", runErr))
	}
	matched, herr := hook.RemoveCounting()
	errs = append(errs, herr)
	cancelRun()
	if rerr := <-done; rerr != nil && runErr == nil {
		errs = append(errs, fmt.Errorf("run: engine: %w", rerr))
	}
	stats := engine.Stats()
	if hook != nil && matched > stats.Packets {
		// Every packet the rules matched was queued (and counted by the
		// engine, which drained the queue) or let past a full queue.
		stats.FailOpen = matched - stats.Packets
	}
	errs = append(errs, engine.Close())
	logLine := ""
	if vlog != nil {
		vlog.Summary(summaryFields(stats))
		errs = append(errs, vlog.Close())
		logLine = logStatus(vlog)
	}
	printSummary(out, stats, time.Since(started), logLine)
	return errors.Join(errs...)
}

// printHookRecipe writes the rules --hook none leaves to the user: the
// iptables lines (for iptables-legacy the same with iptables-legacy and
// ip6tables-legacy), how to remove them, and the nftables equivalent.
func printHookRecipe(out io.Writer, cfg bridgehook.Config) {
	section := func(title string, lines []string) {
		fmt.Fprintln(out, title)
		for _, l := range lines {
			fmt.Fprintln(out, "  "+l)
		}
	}
	section("--hook none: install rules like these yourself (with iptables-legacy, write iptables-legacy and ip6tables-legacy for iptables and ip6tables):", cfg.Describe())
	section("remove them when the run is over:", cfg.DescribeRemove())
	install, remove := cfg.DescribeNftables()
	section("or with native nftables, where the kernel has the queue expression (nft_queue, CONFIG_NFT_QUEUE):", install)
	section("and to remove those:", remove)
}

// copyRange is how much of each packet the engine needs from the kernel:
// the whole packet when a rule may rewrite or duplicate it (the kernel
// takes a rewritten packet back whole, a duplicate is sent whole), else
// the headers, or the pcapng's snap length if that is more. Copying only
// the headers is what keeps bulk transfers cheap: a GSO packet is up to
// 64 KiB.
func copyRange(f *rules.File, o runOptions) uint32 {
	if f.NeedsWholePacket() {
		return nfq.MaxCopyRange
	}
	n := nfq.HeaderRange
	if o.PcapPath != "" {
		snap := o.SnapLen
		if snap <= 0 {
			snap = verdictlog.DefaultSnapLen
		}
		n = max(n, snap)
	}
	return uint32(min(n, nfq.MaxCopyRange))
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
	s := "iptables chain " + cfg.Chain() + " on " + where
	if cfg.VLANTags {
		s += ", VLAN tags by nft table bridge " + cfg.VLANTable()
	}
	return s
}

// summaryFields turns a snapshot into the verdict log's summary record.
func summaryFields(s nfq.Snapshot) map[string]uint64 {
	m := map[string]uint64{
		"packets": s.Packets, "accepted": s.Accepted, "dropped": s.Dropped, "modified": s.Modified,
		"held": s.Held, "released": s.Released, "hold_overflow": s.HoldOverflow,
		"duplicated": s.Duplicated, "injected": s.Injected, "send_failed": s.SendFailed,
		"non_tcp": s.NonTCP, "malformed": s.Malformed, "bad_messages": s.BadMessages,
		"decider_panics": s.DeciderPanic, "verdict_errors": s.VerdictErrs,
		"cut": s.Cut, "cut_needs_whole": s.CutNeedsWhole,
		"kernel_queue_dropped": s.KernelQueueDropped, "kernel_user_dropped": s.KernelUserDropped,
		"kernel_fail_open": s.FailOpen,
	}
	for a, n := range s.ByAction {
		m["action_"+a] = n
	}
	return m
}

// printSummary writes the end-of-run summary for people.
func printSummary(out io.Writer, s nfq.Snapshot, elapsed time.Duration, logLine string) {
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
	fmt.Fprintf(out, "  held           %d, released %d, still held %d, refused (full) %d\n", s.Held, s.Released, s.HeldNow, s.HoldOverflow)
	fmt.Fprintf(out, "  sent           duplicates %d, injected %d, failed %d\n", s.Duplicated, s.Injected, s.SendFailed)
	fmt.Fprintf(out, "  batches        %d, %d of them taken by busy-polling, %d polls found none\n", s.Batches, s.SpinHits, s.SpinMisses)
	fmt.Fprintf(out, "  kernel queue   dropped %d (queue full), user dropped %d (socket full), passed unqueued %d (queue full, fail-open)\n", s.KernelQueueDropped, s.KernelUserDropped, s.FailOpen)
	if logLine != "" {
		fmt.Fprintf(out, "  log records    %s\n", logLine)
	}
	if s.DeciderPanic > 0 || s.VerdictErrs > 0 || s.BadMessages > 0 {
		fmt.Fprintf(out, "  errors         decider panics %d, verdict errors %d, bad messages %d\n", s.DeciderPanic, s.VerdictErrs, s.BadMessages)
	}
}

// builtinObserve is the rule file of a run without --rules: it tracks
// every connection (so the log carries connection ids) and changes nothing.
const builtinObserve = `experiment: observe
about: Track every bridged TCP connection and change nothing.
rules: []
`

// loadRules loads a rule file (a regular file, or with pipe a FIFO or
// pipe too), or a shipped experiment by name, or the built-in observer when
// name is empty. It stops waiting when ctx is done.
func loadRules(ctx context.Context, name string, pipe bool) (*rules.File, error) {
	if name == "" {
		return rules.Parse("(built-in observe)", []byte(builtinObserve))
	}
	if _, err := os.Stat(name); err != nil && !strings.ContainsAny(name, "/.") {
		return rules.LoadLibrary(name)
	}
	return rules.Load(ctx, name, rules.LoadOptions{AllowPipe: pipe})
}

// warnRules logs the warnings of a loaded rule file.
func warnRules(log *slog.Logger, f *rules.File) {
	for _, w := range f.Warnings {
		log.Warn("rule file: " + w)
	}
}

// ruleHosts returns the addresses of every role of the file.
func ruleHosts(f *rules.File) []netip.Prefix {
	var out []netip.Prefix
	for _, hs := range f.Hosts {
		out = append(out, hs...)
	}
	return out
}

// controller carries out control commands and SIGHUP reloads against the
// running Decider, logging each change of rules.
type controller struct {
	decider *rules.Decider
	engine  *nfq.Group
	vlog    *verdictlog.Writer
	path    string // the rule file to reload; "" for the built-in observer
	pipe    bool   // path may be a FIFO or pipe
	log     *slog.Logger
	ctx     context.Context // ends every reload's wait (set by runInline)
	// switches counts rule and mitigation switches for the metrics.
	switches *metrics.Switches
	opts     runOptions // for the copy range of reloaded rules
	mu       sync.Mutex // one reload at a time
}

// reload re-reads the rule file; a file that fails to validate leaves the
// rules in force. It gives up when ctx is done, and refuses while another
// reload is under way (a FIFO waiting for its writer).
func (c *controller) reload(ctx context.Context) (string, error) {
	if !c.mu.TryLock() {
		return "", errors.New("a reload is already under way (waiting for its file); the old rules stay in force")
	}
	defer c.mu.Unlock()
	if c.path == "" {
		return "", errors.New("no rule file to reload (run was started without --rules)")
	}
	f, err := loadRules(ctx, c.path, c.pipe)
	if err != nil {
		return "", fmt.Errorf("the old rules stay in force: %w", err)
	}
	warnRules(c.log, f)
	if c.engine != nil {
		n := copyRange(f, c.opts)
		if st := c.decider.MitigationStats(); st.Moved.Load() > st.Released.Load() {
			// Connections timewait-guard moved stay moved: their
			// segments are still rewritten, whole.
			n = nfq.MaxCopyRange
		}
		if err := c.engine.SetCopyRange(n); err != nil {
			return "", fmt.Errorf("the old rules stay in force: %w", err)
		}
	}
	switched := c.decider.Reload(f)
	now := time.Now()
	if c.vlog != nil {
		c.vlog.RulesLoaded(now, f.Path, f.SHA256, f.Experiment)
	}
	msg := fmt.Sprintf("reloaded %s (experiment %s, sha256 %s)", f.Path, f.Experiment, f.SHA256[:12])
	for _, sw := range switched {
		if c.vlog != nil {
			c.vlog.Mitigation(now, sw.Name, sw.On)
		}
		if c.switches != nil {
			c.switches.Switched("mitigation", sw.Name, onOff(sw.On))
		}
		msg += fmt.Sprintf("; mitigation %s %s", sw.Name, onOff(sw.On))
	}
	return msg, nil
}

// setMitigation switches a mitigation and logs the switch.
func (c *controller) setMitigation(args []string) (string, error) {
	if len(args) != 3 || (args[2] != "on" && args[2] != "off") {
		return "", fmt.Errorf("usage: mitigation NAME on|off (mitigations: %s)", strings.Join(mitigate.Names(), ", "))
	}
	on := args[2] == "on"
	if on && c.engine != nil {
		// A mitigation rewrites packets: the engine needs them whole.
		if err := c.engine.SetCopyRange(nfq.MaxCopyRange); err != nil {
			return "", err
		}
	}
	changed, err := c.decider.SetMitigation(args[1], on)
	if err != nil {
		return "", err
	}
	if !changed {
		return fmt.Sprintf("mitigation %s was %s already", args[1], args[2]), nil
	}
	if c.vlog != nil {
		c.vlog.Mitigation(time.Now(), args[1], on)
	}
	if c.switches != nil {
		c.switches.Switched("mitigation", args[1], args[2])
	}
	return fmt.Sprintf("mitigation %s %s", args[1], args[2]), nil
}

// logMitigationsOn logs a mitigation record for each mitigation the
// Decider starts with.
func logMitigationsOn(vlog *verdictlog.Writer, d *rules.Decider) {
	on := d.Mitigations()
	now := time.Now()
	for _, n := range mitigate.All() {
		if on.Has(n) {
			vlog.Mitigation(now, n.String(), true)
		}
	}
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// writeMitigations lists every mitigation, on or off, with what it did.
func writeMitigations(b *strings.Builder, d *rules.Decider) {
	on, st := d.Mitigations(), d.MitigationStats()
	for _, n := range mitigate.All() {
		var did string
		switch n {
		case mitigate.TimewaitGuard:
			did = fmt.Sprintf("moved %d, segments rewritten %d, released %d, no room %d", st.Moved.Load(), st.Translated.Load(), st.Released.Load(), st.Full.Load())
		case mitigate.FinalAckRepair:
			did = fmt.Sprintf("answered %d, RSTs kept %d, ACKs kept %d", st.Repaired.Load(), st.KeptRSTs.Load(), st.KeptACKs.Load())
		case mitigate.DuelQuench:
			did = fmt.Sprintf("duels quenched %d, segments dropped %d", st.Quenched.Load(), st.QuenchDrops.Load())
		case mitigate.FinReset:
			did = fmt.Sprintf("RSTs sent %d", st.Resets.Load())
		}
		fmt.Fprintf(b, "  %-3s %-28s %s\n", onOff(on.Has(n)), "mitigation "+n.String(), did)
	}
}

// handle carries out one control command.
func (c *controller) handle(args []string) (string, error) {
	switch args[0] {
	case "enable", "disable":
		if len(args) != 2 {
			return "", fmt.Errorf("usage: %s RULE", args[0])
		}
		on := args[0] == "enable"
		if err := c.decider.SetEnabled(args[1], on); err != nil {
			return "", err
		}
		if c.vlog != nil {
			c.vlog.Toggled(time.Now(), args[1], on)
		}
		if c.switches != nil {
			c.switches.Switched("rule", args[1], onOff(on))
		}
		return fmt.Sprintf("rule %s %sd", args[1], args[0]), nil
	case "reload":
		return c.reload(c.ctx)
	case "mitigation":
		return c.setMitigation(args)
	case "rules", "status":
		var b strings.Builder
		f := c.decider.File()
		fmt.Fprintf(&b, "experiment %s (%s, sha256 %s)\n", f.Experiment, f.Path, f.SHA256[:12])
		for _, r := range c.decider.Rules() {
			state := "on "
			if !r.Enabled {
				state = "off"
			}
			fmt.Fprintf(&b, "  %s %-28s %-10s hits %d\n", state, r.Name, r.Action, r.Hits)
		}
		writeMitigations(&b, c.decider)
		if args[0] == "status" {
			st := c.engine.Stats()
			fmt.Fprintf(&b, "packets %d, accepted %d, dropped %d, held now %d, injected %d, duplicated %d\n",
				st.Packets, st.Accepted, st.Dropped, st.HeldNow, st.Injected, st.Duplicated)
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			ts := c.decider.TrackerStats()
			fmt.Fprintf(&b, "tracked connections %d (max %d), expired %d, evicted %d\n",
				ts.Conns.Load(), c.decider.TrackerConfig().MaxConns, ts.Expired.Load(), ts.Evicted.Load())
			fmt.Fprintf(&b, "busy-poll: %d batches taken by polling, %d polls that found none\n", st.SpinHits, st.SpinMisses)
			fmt.Fprintf(&b, "process: goroutines %d, heap in use %d kB\n", runtime.NumGoroutine(), ms.HeapInuse/1024)
			fmt.Fprintf(&b, "holds refused (table full) %d, kernel queue dropped %d, user dropped %d\n",
				st.HoldOverflow, st.KernelQueueDropped, st.KernelUserDropped)
			if c.vlog != nil {
				fmt.Fprintf(&b, "log records %s\n", logStatus(c.vlog))
			}
		}
		return b.String(), nil
	}
	return "", fmt.Errorf("unknown command %q: want enable RULE, disable RULE, mitigation NAME on|off, reload, rules or status", args[0])
}

// liveAnalysis is the configuration of run's live analysis: its tracker
// assumes what the rules' tracker assumes (each role's stack by the rule
// file's hosts: and stacks:, the MSL and TIME-WAIT lengths), so the live
// duel counts and the rules see the same TCP.
func liveAnalysis(d *rules.Decider) analysis.Config {
	tc := d.TrackerConfig()
	return analysis.Config{Stack: d.StackOf, MSL: tc.MSL, TimeWait: tc.TimeWait}
}

// teeRecorder hands every engine event to each recorder in turn.
type teeRecorder []nfq.Recorder

// Record implements nfq.Recorder.
func (t teeRecorder) Record(ev *nfq.Event) {
	for _, r := range t {
		r.Record(ev)
	}
}
