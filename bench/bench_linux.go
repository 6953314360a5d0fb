package bench

import (
	"bufio"
	"context"
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
		rng.Shuffle(len(cells), func(i, j int) { cells[i], cells[j] = cells[j], cells[i] })
		for _, c := range cells {
			v, err := measure(ctx, cfg, topo, anchor, tmp, c.m, c.w, addr)
			if err != nil {
				return rep, fmt.Errorf("bench: round %d, %s, %s: %w", round, c.m, c.w, err)
			}
			rep.Results = append(rep.Results, Result{Round: round, Mode: c.m, Workload: c.w, Value: v})
			if cfg.Progress != nil {
				fmt.Fprintf(cfg.Progress, "round %d  %-14s %-6s %12.1f %s\n", round, c.m, c.w, v, c.w.Unit())
			}
		}
	}
	return rep, nil
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
func measure(ctx context.Context, cfg Config, topo *topology.Topology, anchor, tmp string, m Mode, w Workload, addr string) (float64, error) {
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
			inline = netns.Command(ctx, topo.Bridge, cfg.Exe, "--log-level", "warn", "run", "--hook", "none", "--queue", strconv.Itoa(queueNum))
		case ClosedueLog:
			inline = netns.Command(ctx, topo.Bridge, cfg.Exe, "--log-level", "warn", "run", "--hook", "none", "--queue", strconv.Itoa(queueNum),
				"--force", "--log", filepath.Join(tmp, "v.jsonl"), "--pcap", filepath.Join(tmp, "v.pcapng"))
		case CloseduelMetrics:
			inline = netns.Command(ctx, topo.Bridge, cfg.Exe, "--log-level", "warn", "run", "--hook", "none", "--queue", strconv.Itoa(queueNum),
				"--metrics", "127.0.0.1:0")
		case GoNfqueue:
			inline = netns.Command(ctx, topo.Bridge, cfg.Exe, "bench", "libpass", "--queue", strconv.Itoa(queueNum))
		default:
			return 0, fmt.Errorf("unknown mode %q", m)
		}
		inline.Stdout, inline.Stderr = io.Discard, os.Stderr
		if err := inline.Start(); err != nil {
			return 0, err
		}
		if err := waitBound(ctx, topo.Bridge, queueNum); err != nil {
			inline.Process.Kill()
			inline.Wait()
			return 0, err
		}
		var err error
		hook, err = bridgehook.Install(ctx, bridgehook.Config{NetNS: topo.Bridge, Queue: queueNum, Bridge: topology.BridgeName})
		if err != nil {
			return 0, errors.Join(err, stop())
		}
	}
	out, err := netns.Output(ctx, topo.Client, cfg.Exe, "bench", "load", "--workload", string(w), "--addr", addr, "--duration", cfg.Duration.String())
	serr := stop()
	if err != nil {
		return 0, errors.Join(err, serr)
	}
	if serr != nil {
		return 0, serr
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(out), 64)
	if err != nil {
		return 0, fmt.Errorf("load printed %q: %w", out, err)
	}
	return v, nil
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
	var vs []float64
	for _, res := range r.Results {
		if res.Mode == m && res.Workload == w {
			vs = append(vs, res.Value)
		}
	}
	if len(vs) == 0 {
		return 0
	}
	slices.Sort(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2]
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
}

// Write prints the medians and the ratios to the anchors.
func (r *Report) Write(out io.Writer) {
	fmt.Fprintf(out, "\nmedians of %d interleaved rounds of %v per cell\n", r.Config.Rounds, r.Config.Duration)
	fmt.Fprintf(out, "%-8s %-8s", "workload", "unit")
	for _, m := range r.Config.Modes {
		fmt.Fprintf(out, " %14s", m)
	}
	hasC := slices.Contains(r.Config.Modes, CAnchor)
	hasK := slices.Contains(r.Config.Modes, Kernel)
	if hasC {
		fmt.Fprintf(out, " %14s", "closeduel/C")
	}
	if hasK {
		fmt.Fprintf(out, " %16s", "closeduel/kernel")
	}
	fmt.Fprintln(out)
	for _, w := range r.Config.Workloads {
		fmt.Fprintf(out, "%-8s %-8s", w, w.Unit())
		for _, m := range r.Config.Modes {
			fmt.Fprintf(out, " %14.1f", r.Median(m, w))
		}
		cd := r.Median(Closeduel, w)
		if hasC {
			fmt.Fprintf(out, " %14.3f", ratio(cd, r.Median(CAnchor, w)))
		}
		if hasK {
			fmt.Fprintf(out, " %16.3f", ratio(cd, r.Median(Kernel, w)))
		}
		fmt.Fprintln(out)
	}
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
