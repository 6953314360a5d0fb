package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/closeduel/closeduel/analysis"
	"github.com/closeduel/closeduel/netns"
	"github.com/closeduel/closeduel/topology"
)

// Run runs one experiment on a fresh bench and removes the bench when it
// returns, whatever happened (also when ctx is cancelled, which ends the run
// early but still writes what was gathered). It returns the run's Result
// even with an error when the run directory was made.
func Run(ctx context.Context, cfg Config) (res *Result, err error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		cfg.Name = fmt.Sprintf("l%d", os.Getpid())
	}
	if len(cfg.Helper) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("lab: own executable: %w", err)
		}
		cfg.Helper = []string{exe, "lab"}
	}
	if err := checkTools(cfg.Inline != nil); err != nil {
		return nil, err
	}
	if _, err := SweepStale(); err != nil {
		return nil, err
	}
	var build DeviceBuild
	if cfg.Device == DeviceLwIP {
		if build, err = BuildDevice(ctx, cfg.CacheDir); err != nil {
			return nil, err
		}
	}
	started := time.Now().UTC()
	dir, err := makeRunDir(cfg.RunsDir, started, cfg.Experiment)
	if err != nil {
		return nil, err
	}
	res = &Result{Dir: dir}
	rec := &res.Record
	rec.Experiment, rec.Command, rec.Started, rec.Seed = cfg.Experiment, cfg.Command, started, cfg.Seed
	rec.Versions = Versions{Closeduel: cfg.Version, Go: runtime.Version(), Kernel: kernelRelease(),
		LwIP: build.LwIPVersion, LwIPPackage: build.Package, DeviceSource: build.SourceHash}
	rec.Device.Kind, rec.Device.Close, rec.Device.Size, rec.Device.Port = cfg.Device, cfg.Close, cfg.Size, DefaultPort
	rec.Device.Pool, rec.Device.TimeWait, rec.Device.BusyClose = max(cfg.Pool, 0), "2*TCP_MSL", cfg.BusyClose
	if cfg.TimeWait > 0 {
		rec.Device.TimeWait = cfg.TimeWait.String()
	}
	if cfg.Device == DeviceLinux {
		rec.Device.Pool, rec.Device.TimeWait, rec.Device.BusyClose = 0, "linux (60 s)", false
	}
	w := &rec.Workload
	w.Schedule, w.Requests, w.Concurrency, w.Linger0 = cfg.Schedule, cfg.Schedule.Requests(), cfg.Concurrency, cfg.Linger0
	w.ClientClose = "head"
	if cfg.WaitEOF {
		w.ClientClose = "eof"
	}
	w.Timeout, w.Quiet, w.PortRange, w.Set = cfg.Timeout.String(), cfg.Quiet.String(), cfg.PortRange, cfg.clientSysctls()
	w.RandomPorts = cfg.RandomPorts
	rec.Settings = cfg.Settings
	if cfg.Timeout == 0 {
		w.Timeout = "kernel"
	}
	rec.Rules, rec.Inline = cfg.Rules, cfg.Inline != nil
	rec.Topology.ClientAddr, rec.Topology.DeviceAddr = cfg.ClientAddr.String(), cfg.DeviceAddr.String()
	rec.Topology.PacketCPU, rec.Topology.ClientCPU, rec.Topology.Priority = pinnedCPU, clientCPU(), "SCHED_FIFO "+realtimePriority
	rec.Topology.Name = cfg.Name

	// From here on every path writes run.yaml.
	defer func() {
		rec.Finished = time.Now().UTC()
		if werr := rec.write(dir); werr != nil {
			err = errors.Join(err, werr)
		}
	}()

	topo, err := topology.Build(ctx, topology.Config{Name: cfg.Name, ClientAddr: cfg.ClientAddr, DeviceAddr: cfg.DeviceAddr, DeviceTap: cfg.Device == DeviceLwIP})
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, topo.Close()) }()
	rec.Topology.Namespaces = topo.Namespaces()

	for k, v := range cfg.clientSysctls() {
		if err := netns.Run(ctx, topo.Client, "sysctl", "-q", "-w", k+"="+v); err != nil {
			return res, fmt.Errorf("lab: client sysctl: %w", err)
		}
	}
	w.Sysctls = readSysctls(ctx, topo.Client)

	b := &bench{cfg: &cfg, topo: topo, dir: dir, res: res, device: build}
	err = b.run(ctx)
	if b.sum != nil {
		// The analysis the run fed, with the metadata the analysis of the
		// run directory reads from run.yaml.
		res.Analysis = b.sum.Close(&analysis.RunInfo{Dir: dir, Experiment: rec.Experiment,
			WorkloadStart: rec.WorkloadStart, WorkloadEnd: rec.WorkloadEnd})
		res.Summary = b.sum
		rec.fillResults(b.sum, res.Analysis)
		if rec.Results.RequestsLate == 0 {
			if d, ok := b.sum.WireGapError(cfg.Schedule.Offsets()); ok {
				rec.Results.WireGapError = d.Round(time.Microsecond).String()
			}
		}
	}
	rec.Results.Frames = b.frames
	st := res.DeviceStatus
	rec.Results.DeviceTimeWait, rec.Results.DevicePoolKills = st.TimeWait, st.PoolKilled
	res.check(cfg.Expect)
	// The report may read run.yaml (the analysis does): write it first.
	rec.Finished = time.Now().UTC()
	if werr := rec.write(dir); werr != nil {
		err = errors.Join(err, werr)
	}
	if rerr := b.report(); rerr != nil {
		err = errors.Join(err, rerr)
	}
	if res.Analysis != nil {
		if rerr := writeReportFiles(dir, res.Analysis); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	return res, err
}

// writeReportFiles writes report.json (the analysis report's JSON, as
// closeduel analyze --json gives it) and report.html (its offline page)
// beside report.txt.
func writeReportFiles(dir string, rep *analysis.Report) error {
	for _, f := range []struct {
		name  string
		write func(io.Writer) error
	}{
		{FileReportJSON, func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(rep)
		}},
		{FileReportHTML, func(w io.Writer) error { return analysis.WriteHTML(w, rep) }},
	} {
		out, err := os.Create(filepath.Join(dir, f.name))
		if err != nil {
			return fmt.Errorf("lab: %w", err)
		}
		err = f.write(out)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("lab: %s: %w", f.name, err)
		}
	}
	return nil
}

// report writes report.txt and copies it to cfg.Out.
func (b *bench) report() error {
	f, err := os.Create(filepath.Join(b.dir, FileReport))
	if err != nil {
		return fmt.Errorf("lab: report: %w", err)
	}
	var w io.Writer = f
	if b.cfg.Out != nil {
		w = io.MultiWriter(f, b.cfg.Out)
	}
	report := b.cfg.Report
	if report == nil {
		report = WriteReport
	}
	err = report(w, b.res)
	if cerr := f.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if err != nil {
		return fmt.Errorf("lab: report: %w", err)
	}
	return nil
}

// bench is one run in progress.
type bench struct {
	cfg    *Config
	topo   *topology.Topology
	dir    string
	res    *Result
	device DeviceBuild

	// sum follows the bench's segments (it locks itself); frames counts
	// the lab capture's frames once it is closed.
	sum    *Summary
	frames int

	mu      sync.Mutex // guards devLast
	devLast DeviceEvent

	ok, failed, late         int
	maxStartErr, maxGapErr   time.Duration
	lastStart, lastScheduled int64
}

func (b *bench) run(ctx context.Context) (err error) {
	cfg, topo := b.cfg, b.topo
	b.sum, err = NewSummary(cfg.ClientAddr.Addr(), cfg.DeviceAddr.Addr(), cfg.Device)
	if err != nil {
		return err
	}

	// Capture everything on the bridge for the whole run.
	wire := filepath.Join(b.dir, FileCapture)
	if cfg.Inline != nil {
		wire = filepath.Join(b.dir, FileWire)
		if err := os.MkdirAll(filepath.Dir(wire), 0o755); err != nil {
			return fmt.Errorf("lab: %w", err)
		}
	}
	// The summary reads what the analysis of the run directory will read:
	// the engine's records when it runs, else this capture.
	order := newOrderCheck()
	onFrame := func(t time.Time, frame []byte) { order.add(frame) }
	if cfg.Inline == nil {
		onFrame = func(t time.Time, frame []byte) {
			order.add(frame)
			b.sum.AddFrame(t, frame)
		}
	}
	capt, err := OpenCapture(topo.Bridge, topology.BridgeName, wire, onFrame)
	if err != nil {
		return err
	}
	capCtx, capStop := context.WithCancel(context.Background())
	capDone := make(chan error, 1)
	go func() { capDone <- capt.Run(capCtx) }()
	defer func() {
		capStop()
		err = errors.Join(err, <-capDone)
		b.frames = int(capt.Frames())
		b.res.Record.Results.OutOfOrder = order.outOfOrder()
	}()

	if cfg.Inline != nil {
		env := InlineEnv{NetNS: topo.Bridge, Bridge: topology.BridgeName, Dir: b.dir,
			Client: cfg.ClientAddr.Addr(), Device: cfg.DeviceAddr.Addr(), Seed: cfg.Seed, Observe: b.sum}
		if err := cfg.Inline.Start(ctx, env); err != nil {
			return fmt.Errorf("lab: middlebox: %w", err)
		}
		defer func() {
			err = errors.Join(err, cfg.Inline.Stop())
			_, b.res.Record.Results.Verdicts = cfg.Inline.Counts()
		}()
	}

	dev, err := b.startDevice(ctx)
	if err != nil {
		return err
	}
	defer func() {
		err = errors.Join(err, dev.stop(5*time.Second))
		b.mu.Lock()
		b.res.DeviceStatus = b.devLast
		b.mu.Unlock()
	}()

	if err := probeDevice(ctx, topo.Client, cfg.DeviceAddr.Addr(), readyTimeout); err != nil {
		return err
	}
	if cfg.Gate != nil {
		if err := cfg.Gate(ctx); err != nil {
			return err
		}
	}

	prog := &progress{start: time.Now(), plan: cfg.Schedule.Duration() + cfg.Quiet, quiet: cfg.Quiet,
		stats: func() (analysis.LiveCounts, map[string]uint64) {
			live := b.sum.Live()
			var verdicts map[string]uint64
			if cfg.Inline != nil {
				_, verdicts = cfg.Inline.Counts()
				if verdicts == nil {
					verdicts = map[string]uint64{}
				}
			}
			return live, verdicts
		}}
	if cfg.Live {
		prog.w = cfg.Progress
	}
	progCtx, progStop := context.WithCancel(context.Background())
	progDone := make(chan struct{})
	go func() { prog.run(progCtx); close(progDone) }()
	defer func() { progStop(); <-progDone }()

	stopped := make(chan time.Time, 1)
	client, err := b.startClient(ctx, prog, stopped)
	if err != nil {
		return err
	}
	var stopAt time.Time
	select {
	case stopAt = <-stopped:
	case <-client.done:
		select {
		case stopAt = <-stopped:
		default:
			return errors.Join(fmt.Errorf("lab: the client ended before its schedule did"), client.exitErr())
		}
	case <-ctx.Done():
	}
	if ctx.Err() == nil {
		t := time.NewTimer(time.Until(stopAt.Add(cfg.Quiet)))
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	err = errors.Join(err, client.stop(3*time.Second))
	if b.late > 0 || b.failed > 0 || b.ok > 0 {
		r := &b.res.Record.Results
		r.RequestsOK, r.RequestsFailed, r.RequestsLate = b.ok, b.failed, b.late
		r.MaxStartError = b.maxStartErr.Round(time.Microsecond).String()
		r.MaxGapError = b.maxGapErr.Round(time.Microsecond).String()
	}
	dev.signal(syscall.SIGUSR1)
	time.Sleep(100 * time.Millisecond)
	if ctx.Err() != nil {
		err = errors.Join(err, fmt.Errorf("lab: run interrupted: %w", ctx.Err()))
	}
	return err
}

// startDevice starts the device and waits until it serves.
func (b *bench) startDevice(ctx context.Context) (*proc, error) {
	cfg, topo := b.cfg, b.topo
	log, err := os.Create(filepath.Join(b.dir, FileDevice))
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	ready := make(chan struct{})
	var once sync.Once
	onLine := func(line []byte) {
		var ev DeviceEvent
		if json.Unmarshal(line, &ev) != nil {
			return
		}
		switch ev.Event {
		case "ready":
			once.Do(func() { close(ready) })
		case "status":
			b.mu.Lock()
			b.devLast = ev
			b.mu.Unlock()
		}
	}
	var p *proc
	switch cfg.Device {
	case DeviceLwIP:
		args := []string{b.device.Path, "-addr", cfg.DeviceAddr.String(), "-port", strconv.Itoa(DefaultPort),
			"-close", cfg.Close.String(), "-size", strconv.Itoa(cfg.Size), "-pool", strconv.Itoa(max(cfg.Pool, 0)),
			"-timewait", strconv.FormatInt(cfg.TimeWait.Milliseconds(), 10)}
		if cfg.BusyClose {
			args = append(args, "-busyclose", "1")
		}
		p, err = startProc(ctx, "lwIP device", topo.Bridge, devicePlacement, []string{"PRECONFIGURED_TAPIF=" + topology.TapName}, args, log, onLine)
		if err != nil {
			log.Close()
			return nil, err
		}
	case DeviceLinux:
		js, _ := json.Marshal(LinuxDeviceConfig{Listen: fmt.Sprintf("%s:%d", cfg.DeviceAddr.Addr(), DefaultPort), Close: cfg.Close, Size: cfg.Size})
		argv := append(append([]string(nil), cfg.Helper...), "device-linux", "--config", string(js))
		p, err = startProc(ctx, "Linux device", topo.Device, goPlacement, nil, argv, log, onLine)
		if err != nil {
			log.Close()
			return nil, err
		}
	default:
		log.Close()
		return nil, fmt.Errorf("lab: unknown device %s", cfg.Device)
	}
	go func() { <-p.done; log.Close() }()
	select {
	case <-ready:
		return p, nil
	case <-p.done:
		return nil, errors.Join(errors.New("lab: the device exited before it was ready"), p.exitErr())
	case <-time.After(readyTimeout):
		p.stop(time.Second) //nolint:errcheck
		return nil, fmt.Errorf("lab: the device did not get ready within %s: %s", readyTimeout, p.stderrText())
	case <-ctx.Done():
		p.stop(time.Second) //nolint:errcheck
		return nil, ctx.Err()
	}
}

// startClient starts the workload; stopped receives the time the schedule
// ended.
func (b *bench) startClient(ctx context.Context, prog *progress, stopped chan<- time.Time) (*proc, error) {
	cfg := b.cfg
	log, err := os.Create(filepath.Join(b.dir, FileWorkload))
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	cc := ClientConfig{Target: fmt.Sprintf("%s:%d", cfg.DeviceAddr.Addr(), DefaultPort), Schedule: cfg.Schedule,
		Concurrency: cfg.Concurrency, Linger0: cfg.Linger0, Timeout: cfg.Timeout, WaitEOF: cfg.WaitEOF,
		RandomPorts: cfg.RandomPorts}
	js, _ := json.Marshal(cc)
	onLine := func(line []byte) {
		var ev ClientEvent
		if json.Unmarshal(line, &ev) != nil {
			return
		}
		switch ev.Kind {
		case ClientStart:
			if ev.I == 0 {
				b.res.Record.WorkloadStart = time.Unix(0, ev.Start).UTC()
			}
			if ev.Late {
				b.late++
			} else {
				d := time.Duration(ev.Start - ev.Scheduled)
				b.maxStartErr = max(b.maxStartErr, d, -d)
				if ev.I > 0 && b.lastStart != 0 {
					g := time.Duration((ev.Start - b.lastStart) - (ev.Scheduled - b.lastScheduled))
					b.maxGapErr = max(b.maxGapErr, g, -g)
				}
			}
			b.lastStart, b.lastScheduled = ev.Start, ev.Scheduled
		case ClientResult:
			if ev.OK {
				b.ok++
			} else {
				b.failed++
			}
			prog.request(ev.OK)
		case ClientStopped:
			at := time.Unix(0, ev.End)
			b.res.Record.WorkloadEnd = at.UTC()
			b.sum.SetStop(at)
			prog.stop(at)
			stopped <- at
		}
	}
	argv := append(append([]string(nil), cfg.Helper...), "client", "--config", string(js))
	p, err := startProc(ctx, "client", b.topo.Client, goPlacement, nil, argv, log, onLine)
	if err != nil {
		log.Close()
		return nil, err
	}
	go func() { <-p.done; log.Close() }()
	return p, nil
}

// tools names the programs the bench runs and the Debian packages that
// hold them.
var tools = []struct{ name, pkg string }{
	{"ip", "iproute2"}, {"ethtool", "ethtool"}, {"sysctl", "procps"},
	{"taskset", "util-linux"}, {"chrt", "util-linux"},
}

// checkTools says which package to install when a program the bench needs
// is missing.
func checkTools(inline bool) error {
	list := tools
	if inline {
		list = append(list, struct{ name, pkg string }{"iptables", "iptables"})
	}
	for _, t := range list {
		if _, err := exec.LookPath(t.name); err != nil {
			return fmt.Errorf("lab: the bench needs %s (apt-get install %s): %w", t.name, t.pkg, err)
		}
	}
	return nil
}

// makeRunDir creates <root>/<UTC time>-<experiment>, with a suffix when
// that exists already.
func makeRunDir(root string, at time.Time, experiment string) (string, error) {
	base := filepath.Join(root, at.Format("20060102T150405Z")+"-"+experiment)
	dir := base
	for i := 2; ; i++ {
		err := os.MkdirAll(filepath.Dir(dir), 0o755)
		if err == nil {
			err = os.Mkdir(dir, 0o755)
		}
		if err == nil {
			return dir, nil
		}
		if !errors.Is(err, os.ErrExist) || i > 100 {
			return "", fmt.Errorf("lab: run directory: %w", err)
		}
		dir = fmt.Sprintf("%s-%d", base, i)
	}
}

// readSysctls reads the client namespace's sysctls that matter.
func readSysctls(ctx context.Context, ns string) map[string]string {
	out := map[string]string{}
	for _, k := range ClientSysctls {
		v, err := netns.Output(ctx, ns, "sysctl", "-n", k)
		if err == nil {
			out[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return out
}

func kernelRelease() string {
	var u syscall.Utsname
	if syscall.Uname(&u) != nil {
		return ""
	}
	var b strings.Builder
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	return b.String()
}
