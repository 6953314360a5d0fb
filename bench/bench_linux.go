package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/closeduel/closeduel/bridgehook"
	"github.com/closeduel/closeduel/netns"
	"github.com/closeduel/closeduel/topology"
)

func (c *Config) fill() error {
	if c.Rounds <= 0 {
		c.Rounds = 3
	}
	if c.Duration <= 0 {
		c.Duration = 3 * time.Second
	}
	if len(c.Workloads) == 0 {
		c.Workloads = []Workload{RequestResponse, Churn, Bulk}
	}
	if len(c.Modes) == 0 {
		c.Modes = []Mode{Kernel, CAnchor, Closeduel}
	}
	if c.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: find own binary: %w", err)
		}
		c.Exe = exe
	}
	if c.AnchorSource == "" && slices.Contains(c.Modes, CAnchor) {
		c.AnchorSource = findAnchor()
		if c.AnchorSource == "" {
			return errors.New("bench: the C anchor source shared/anchors/nfq-c-pass.c was not found beside the repository; give --anchor")
		}
	}
	return nil
}

// findAnchor looks for shared/anchors/nfq-c-pass.c above the working
// directory and the executable.
func findAnchor() string {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, dir := range starts {
		for d := dir; ; d = filepath.Dir(d) {
			p := filepath.Join(d, "shared", "anchors", "nfq-c-pass.c")
			if _, err := os.Stat(p); err == nil {
				return p
			}
			if d == filepath.Dir(d) {
				break
			}
		}
	}
	return ""
}

// buildAnchor compiles the C anchor into dir.
func buildAnchor(ctx context.Context, src, dir string) (string, error) {
	bin := filepath.Join(dir, "nfq-c-pass")
	out, err := exec.CommandContext(ctx, "cc", "-O2", "-o", bin, src, "-lnetfilter_queue", "-lnfnetlink").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("bench: build the C anchor (needs gcc, libnetfilter-queue-dev, libnfnetlink-dev): %w: %s", err, strings.TrimSpace(string(out)))
	}
	return bin, nil
}

// Run builds a bench, measures every cell, removes the bench and returns
// the results.
func Run(ctx context.Context, cfg Config) (rep *Report, err error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "closeduel-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	var anchor string
	if slices.Contains(cfg.Modes, CAnchor) {
		if anchor, err = buildAnchor(ctx, cfg.AnchorSource, tmp); err != nil {
			return nil, err
		}
	}
	topo, err := topology.Build(ctx, topology.Config{Name: fmt.Sprintf("bn%d", os.Getpid()%100000), KeepOffload: true})
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, topo.Close()) }()
	addr := topo.DeviceAddr.Addr().String()
	// The churn load cycles through the client's whole port range within
	// a few rounds; the device keeps no TIME_WAIT, so a reused port never
	// meets an old incarnation and every mode measures the same churn.
	if err := netns.Do(topo.Device, func() error {
		return os.WriteFile("/proc/sys/net/ipv4/tcp_max_tw_buckets", []byte("0"), 0o644)
	}); err != nil {
		return nil, fmt.Errorf("bench: device sysctl: %w", err)
	}

	srvCtx, stopSrv := context.WithCancel(ctx)
	srv := netns.Command(srvCtx, topo.Device, cfg.Exe, "bench", "serve", "--addr", addr)
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		stopSrv()
		return nil, fmt.Errorf("bench: start servers: %w", err)
	}
	defer func() { stopSrv(); srv.Wait() }()
	if err := waitListening(ctx, topo.Client, addr); err != nil {
		return nil, err
	}

	if err := writeRuleFiles(tmp, topo); err != nil {
		return nil, err
	}
	rep = &Report{Config: cfg}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	type cell struct {
		m Mode
		w Workload
	}
	for round := 1; round <= cfg.Rounds; round++ {
		var cells []cell
		for _, m := range cfg.Modes {
			for _, w := range cfg.Workloads {
				cells = append(cells, cell{m, w})
			}
		}
		for _, rate := range cfg.DelayRates {
			cells = append(cells, cell{m: delayCell, w: Workload(strconv.Itoa(rate))}, cell{m: delayCellRT, w: Workload(strconv.Itoa(rate))})
		}
		rng.Shuffle(len(cells), func(i, j int) { cells[i], cells[j] = cells[j], cells[i] })
		for _, c := range cells {
			if c.m == delayCell || c.m == delayCellRT {
				rate, _ := strconv.Atoi(string(c.w))
				dr, err := measureDelay(ctx, cfg, topo, tmp, c.m, rate, addr)
				if err != nil {
					return rep, fmt.Errorf("bench: round %d, delay precision at %d pkt/s: %w", round, rate, err)
				}
				dr.Round, dr.RT = round, c.m == delayCellRT
				rep.Delays = append(rep.Delays, dr)
				if cfg.Progress != nil {
					fmt.Fprintf(cfg.Progress, "round %d  %-12s %v at %6d pkt/s: %d delayed (%.0f/s), error p50 %.0f µs p99 %.0f µs\n",
						round, c.m, DelayAsked, rate, dr.N, dr.Achieved, dr.P50, dr.P99)
				}
				continue
			}
			fig, err := measure(ctx, cfg, topo, anchor, tmp, c.m, c.w, addr)
			if err != nil {
				return rep, fmt.Errorf("bench: round %d, %s, %s: %w", round, c.m, c.w, err)
			}
			res := Result{Round: round, Mode: c.m, Workload: c.w, Value: fig.Value,
				P50: float64(fig.P50) / 1e3, P99: float64(fig.P99) / 1e3}
			rep.Results = append(rep.Results, res)
			if cfg.Progress != nil {
				fmt.Fprintf(cfg.Progress, "round %d  %-20s %-6s %12.1f %s", round, c.m, c.w, fig.Value, c.w.Unit())
				if c.w == RequestResponse {
					fmt.Fprintf(cfg.Progress, "  p50 %.1f µs  p99 %.1f µs", res.P50, res.P99)
				}
				fmt.Fprintln(cfg.Progress)
			}
		}
	}
	return rep, nil
}

// delayCell and delayCellRT mark delay-precision cells in a round's
// shuffled order: closeduel with the normal scheduler, and with its packet
// thread under SCHED_FIFO (--rt-priority).
const (
	delayCell   Mode = "delay"
	delayCellRT Mode = "delay+rt"
)

// The rule files of the modes that need one, written into the run's
// temporary directory.
const (
	twentyRulesFile = "twenty-rules.yaml"
	delayRulesFile  = "delay.yaml"
)

// writeRuleFiles writes the 20-rule file (rules that look at every segment
// of the experiment's hosts and match none of the bench's traffic: they
// name ports the bench does not use) and the delay-precision file.
func writeRuleFiles(dir string, topo *topology.Topology) error {
	hosts := fmt.Sprintf("hosts: { client: %s, device: %s }\n", topo.ClientAddr.Addr(), topo.DeviceAddr.Addr())
	var b strings.Builder
	b.WriteString("experiment: twenty-rules\nabout: Twenty rules that match none of the bench's traffic.\n" + hosts + "rules:\n")
	actions := []string{"drop", "{ delay: 10ms }", "{ hold-until-next: true, max: 1s }", "log-only"}
	for i := 1; i <= 20; i++ {
		from := "client"
		if i%2 == 0 {
			from = "device"
		}
		fmt.Fprintf(&b, "  - name: nothing-%d\n    when: { from: %s, ports: %d, payload: \">0\" }\n    do: %s\n",
			i, from, 9000+i, actions[i%len(actions)])
	}
	if err := os.WriteFile(filepath.Join(dir, twentyRulesFile), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	delay := "experiment: delay-precision\nabout: Delay every data segment from the client to the bulk port.\n" + hosts +
		fmt.Sprintf("rules:\n  - name: delay-data\n    when: { from: client, ports: %d, payload: \">0\" }\n    do: { delay: %v }\n", portBulk, DelayAsked)
	if err := os.WriteFile(filepath.Join(dir, delayRulesFile), []byte(delay), 0o644); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// waitListening waits until the servers accept connections.
func waitListening(ctx context.Context, clientNS, addr string) error {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if netns.Run(ctx, clientNS, "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%d", addr, portBulk)) == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("bench: the servers did not come up")
}

// measure puts one mode inline, runs one workload from the client
// namespace and takes the mode out again.
func measure(ctx context.Context, cfg Config, topo *topology.Topology, anchor, tmp string, m Mode, w Workload, addr string) (Figure, error) {
	var fig Figure
	err := inline(ctx, cfg, topo, anchor, tmp, m, func() error {
		out, err := netns.Output(ctx, topo.Client, cfg.Exe, "bench", "load", "--workload", string(w), "--addr", addr, "--duration", cfg.Duration.String())
		if err != nil {
			return err
		}
		fields := strings.Fields(out)
		var vals [3]float64
		for i := range min(len(fields), 3) {
			if vals[i], err = strconv.ParseFloat(fields[i], 64); err != nil {
				return fmt.Errorf("load printed %q: %w", out, err)
			}
		}
		if len(fields) == 0 {
			return fmt.Errorf("load printed %q", out)
		}
		fig = Figure{Value: vals[0], P50: time.Duration(vals[1] * 1e3), P99: time.Duration(vals[2] * 1e3)}
		return nil
	})
	return fig, err
}

// measureDelay puts closeduel inline with the delay rule and its verdict
// log, paces one-byte segments through it at rate and reads the delays
// the log records.
func measureDelay(ctx context.Context, cfg Config, topo *topology.Topology, tmp string, m Mode, rate int, addr string) (DelayResult, error) {
	var sent int
	err := inline(ctx, cfg, topo, "", tmp, m, func() error {
		out, err := netns.Output(ctx, topo.Client, cfg.Exe, "bench", "pace", "--rate", strconv.Itoa(rate), "--addr", addr, "--duration", cfg.Duration.String())
		if err != nil {
			return err
		}
		sent, err = strconv.Atoi(strings.TrimSpace(out))
		return err
	})
	if err != nil {
		return DelayResult{}, err
	}
	errs, err := delayErrors(filepath.Join(tmp, "delay.jsonl"), "delay-data", DelayAsked)
	if err != nil {
		return DelayResult{}, err
	}
	if len(errs) == 0 {
		return DelayResult{}, fmt.Errorf("no delayed segment in the log (%d sent)", sent)
	}
	slices.Sort(errs)
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	return DelayResult{
		Rate: rate, Achieved: float64(len(errs)) / cfg.Duration.Seconds(), N: len(errs),
		P50: us(errs[len(errs)/2]), P99: us(errs[len(errs)*99/100]), Max: us(errs[len(errs)-1]),
	}, nil
}

// delayErrors reads a verdict log and returns, for every verdict of rule,
// its delay minus asked.
func delayErrors(path, rule string, asked time.Duration) ([]time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []time.Duration
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r struct {
			Kind  string `json:"kind"`
			Rule  string `json:"rule"`
			Delay int64  `json:"delay"`
		}
		if json.Unmarshal(sc.Bytes(), &r) != nil || r.Kind != "verdict" || r.Rule != rule {
			continue
		}
		out = append(out, time.Duration(r.Delay)-asked)
	}
	return out, sc.Err()
}

// inline puts mode m inline on the bench's bridge, runs load and takes the
// mode out again.
func inline(ctx context.Context, cfg Config, topo *topology.Topology, anchor, tmp string, m Mode, load func() error) (err error) {
	var inline *exec.Cmd
	var hook *bridgehook.Hook
	stop := func() error {
		var errs []error
		if hook != nil {
			errs = append(errs, hook.Remove())
		}
		if inline != nil {
			inline.Process.Signal(syscall.SIGINT)
			if err := inline.Wait(); err != nil {
				errs = append(errs, fmt.Errorf("%s exited: %w", m, err))
			}
		}
		return errors.Join(errs...)
	}
	if m != Kernel {
		switch m {
		case CAnchor:
			inline = netns.Command(ctx, topo.Bridge, anchor, strconv.Itoa(queueNum))
		case Closeduel:
			inline = netns.Command(ctx, topo.Bridge, cfg.Exe, "--log-level", "warn", "run", "--hook", "none", "--queue", strconv.Itoa(queueNum), "--control", "off")
		case ClosedueLog:
			inline = netns.Command(ctx, topo.Bridge, cfg.Exe, "--log-level", "warn", "run", "--hook", "none", "--queue", strconv.Itoa(queueNum),
				"--control", "off", "--force", "--log", filepath.Join(tmp, "v.jsonl"), "--pcap", filepath.Join(tmp, "v.pcapng"))
		case ClosedueLogNoPoll:
			inline = netns.Command(ctx, topo.Bridge, cfg.Exe, "--log-level", "warn", "run", "--hook", "none", "--queue", strconv.Itoa(queueNum),
				"--control", "off", "--busy-poll", "0", "--force", "--log", filepath.Join(tmp, "v.jsonl"), "--pcap", filepath.Join(tmp, "v.pcapng"))
		case ClosedueLogRT:
			inline = netns.Command(ctx, topo.Bridge, cfg.Exe, "--log-level", "warn", "run", "--hook", "none", "--queue", strconv.Itoa(queueNum),
				"--control", "off", "--rt-priority", "10", "--force", "--log", filepath.Join(tmp, "v.jsonl"), "--pcap", filepath.Join(tmp, "v.pcapng"))
		case ClosedueLog2Q:
			inline = netns.Command(ctx, topo.Bridge, cfg.Exe, "--log-level", "warn", "run", "--hook", "none", "--queue", strconv.Itoa(queueNum),
				"--control", "off", "--queues", "2", "--force", "--log", filepath.Join(tmp, "v.jsonl"), "--pcap", filepath.Join(tmp, "v.pcapng"))
		case Closeduel20:
			inline = netns.Command(ctx, topo.Bridge, cfg.Exe, "--log-level", "warn", "run", "--hook", "none", "--queue", strconv.Itoa(queueNum),
				"--control", "off", "--rules", filepath.Join(tmp, twentyRulesFile),
				"--force", "--log", filepath.Join(tmp, "v.jsonl"), "--pcap", filepath.Join(tmp, "v.pcapng"))
		case delayCell, delayCellRT:
			args := []string{"--log-level", "warn", "run", "--hook", "none", "--queue", strconv.Itoa(queueNum),
				"--control", "off", "--rules", filepath.Join(tmp, delayRulesFile), "--force", "--log", filepath.Join(tmp, "delay.jsonl")}
			if m == delayCellRT {
				args = append(args, "--rt-priority", "10")
			}
			inline = netns.Command(ctx, topo.Bridge, append([]string{cfg.Exe}, args...)...)
		case CloseduelMetrics:
			inline = netns.Command(ctx, topo.Bridge, cfg.Exe, "--log-level", "warn", "run", "--hook", "none", "--queue", strconv.Itoa(queueNum),
				"--control", "off", "--metrics", "127.0.0.1:0")
		case GoNfqueue:
			inline = netns.Command(ctx, topo.Bridge, cfg.Exe, "bench", "libpass", "--queue", strconv.Itoa(queueNum))
		default:
			return fmt.Errorf("unknown mode %q", m)
		}
		// Its log goes to a buffer, shown when it fails.
		var logBuf bytes.Buffer
		inline.Stdout, inline.Stderr = io.Discard, &logBuf
		defer func() {
			if err != nil && logBuf.Len() > 0 {
				err = fmt.Errorf("%w; %s said:\n%s", err, m, logBuf.String())
			}
		}()
		if err := inline.Start(); err != nil {
			return err
		}
		if err := waitBound(ctx, topo.Bridge, queueNum); err != nil {
			inline.Process.Kill()
			inline.Wait()
			return err
		}
		hc := bridgehook.Config{NetNS: topo.Bridge, Queue: queueNum, Bridge: topology.BridgeName}
		if m == ClosedueLog2Q {
			hc.Queues = 2
		}
		hook, err = bridgehook.Install(ctx, hc)
		if err != nil {
			return errors.Join(err, stop())
		}
	}
	err = load()
	return errors.Join(err, stop())
}

// waitBound waits until a program has bound the queue in the namespace.
func waitBound(ctx context.Context, ns string, queue int) error {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		bound := false
		netns.Do(ns, func() error {
			f, err := os.Open("/proc/thread-self/net/netfilter/nfnetlink_queue")
			if err != nil {
				return err
			}
			defer f.Close()
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				fields := strings.Fields(sc.Text())
				if len(fields) > 0 && fields[0] == strconv.Itoa(queue) {
					bound = true
				}
			}
			return nil
		})
		if bound {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("queue %d was not bound within 5 s", queue)
}

// Median returns the median of the mode's values for a workload.
func (r *Report) Median(m Mode, w Workload) float64 {
	return r.median(m, w, func(res Result) float64 { return res.Value })
}

func (r *Report) median(m Mode, w Workload, f func(Result) float64) float64 {
	var vs []float64
	for _, res := range r.Results {
		if res.Mode == m && res.Workload == w {
			vs = append(vs, f(res))
		}
	}
	return median(vs)
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	vs = slices.Clone(vs)
	slices.Sort(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2]
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
}

// Write prints the medians, the ratios to the anchors, the round trip's
// percentiles and the delay precision.
func (r *Report) Write(out io.Writer) {
	modes := r.Config.Modes
	fmt.Fprintf(out, "\nmedians of %d interleaved rounds of %v per cell\n", r.Config.Rounds, r.Config.Duration)
	fmt.Fprintf(out, "%-8s %-8s", "workload", "unit")
	for _, m := range modes {
		fmt.Fprintf(out, " %20s", m)
	}
	fmt.Fprintln(out)
	for _, w := range r.Config.Workloads {
		fmt.Fprintf(out, "%-8s %-8s", w, w.Unit())
		for _, m := range modes {
			fmt.Fprintf(out, " %20.1f", r.Median(m, w))
		}
		fmt.Fprintln(out)
	}

	// Ratios: every closeduel mode to the C anchor and to the kernel.
	var ours []Mode
	for _, m := range modes {
		if m == Closeduel || m == ClosedueLog || m == ClosedueLogNoPoll || m == ClosedueLogRT || m == ClosedueLog2Q || m == Closeduel20 || m == CloseduelMetrics {
			ours = append(ours, m)
		}
	}
	for _, anchor := range []Mode{CAnchor, Kernel} {
		if !slices.Contains(modes, anchor) || len(ours) == 0 {
			continue
		}
		fmt.Fprintf(out, "\nratio to %-11s", anchor)
		for _, m := range ours {
			fmt.Fprintf(out, " %20s", m)
		}
		fmt.Fprintln(out)
		for _, w := range r.Config.Workloads {
			fmt.Fprintf(out, "%-20s", w)
			for _, m := range ours {
				fmt.Fprintf(out, " %20.3f", ratio(r.Median(m, w), r.Median(anchor, w)))
			}
			fmt.Fprintln(out)
		}
	}

	if slices.Contains(r.Config.Workloads, RequestResponse) {
		fmt.Fprintf(out, "\nrequest/response round trip, µs (medians over the rounds of each round's percentile)\n")
		fmt.Fprintf(out, "%-20s %9s %9s %18s\n", "mode", "p50", "p99", "p99 - kernel p99")
		kp99 := r.median(Kernel, RequestResponse, func(res Result) float64 { return res.P99 })
		for _, m := range modes {
			p50 := r.median(m, RequestResponse, func(res Result) float64 { return res.P50 })
			p99 := r.median(m, RequestResponse, func(res Result) float64 { return res.P99 })
			fmt.Fprintf(out, "%-20s %9.1f %9.1f", m, p50, p99)
			if slices.Contains(modes, Kernel) && m != Kernel {
				fmt.Fprintf(out, " %18.1f", p99-kp99)
			}
			fmt.Fprintln(out)
		}
	}

	if len(r.Delays) > 0 {
		fmt.Fprintf(out, "\ndelay precision: closeduel delaying each paced one-byte segment by %v (measured - asked, µs; the engine's receipt-to-verdict time from its log; medians over the rounds)\n", DelayAsked)
		fmt.Fprintf(out, "%-10s %-28s %12s %9s %9s %9s\n", "pkt/s", "packet thread", "delayed/s", "p50", "p99", "max")
		for _, rate := range r.Config.DelayRates {
			for _, rt := range []bool{false, true} {
				var ach, p50, p99, mx []float64
				for _, d := range r.Delays {
					if d.Rate == rate && d.RT == rt {
						ach, p50, p99, mx = append(ach, d.Achieved), append(p50, d.P50), append(p99, d.P99), append(mx, d.Max)
					}
				}
				sched := "normal scheduler"
				if rt {
					sched = "SCHED_FIFO (--rt-priority)"
				}
				fmt.Fprintf(out, "%-10d %-28s %12.0f %9.1f %9.1f %9.1f\n", rate, sched, median(ach), median(p50), median(p99), median(mx))
			}
		}
	}
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
