package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/closeduel/closeduel/analysis"
	"github.com/closeduel/closeduel/lab"
	"github.com/closeduel/closeduel/mitigate"
	"github.com/closeduel/closeduel/rules"
)

// labCommand is `closeduel lab`: one experiment on the built-in bench.
func labCommand() *cli.Command {
	return &cli.Command{
		Name:  "lab",
		Usage: "run an experiment on the built-in lab bench (client, bridge, lwIP device)",
		Description: `Builds the bench in fresh network namespaces (client 192.168.100.1, bridge br0 with
closeduel inline, device 192.168.100.99: Debian's lwIP on a tap, or --device linux),
runs the original workload (one HTTP HEAD per new connection on --schedule), keeps
watching for --quiet after the client stopped, prints the report, and leaves
runs/<time>-<experiment>/ with run.yaml, report.txt, report.json, report.html,
capture.pcapng, verdicts.jsonl, device.log and workload.log. The bench is always removed.
A rule file's lab: section sets the bench (flags given here override it) and its
expect: section says what the run should show. --matrix runs every library
experiment against both devices at once and prints the table. lab/README.md documents it.` + examples(
			"closeduel lab",
			"closeduel lab --rules lost-final-ack --quiet 60s",
			"closeduel lab --matrix",
			"closeduel lab --device linux --ports 40000-40001 --client-close eof --schedule 3x1s --experiment reuse-linux",
			"closeduel lab --ab timewait-guard",
		),
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "device", Value: "lwip", Usage: "lwip (Debian's lwIP on a tap) or linux (the control group)"},
			&cli.StringFlag{Name: "rules", Usage: "rule file the inline engine runs (default: observe only)"},
			&cli.BoolFlag{Name: "no-inline", Usage: "run the bench without the inline engine (capture only)"},
			&cli.StringFlag{Name: "experiment", Usage: "name of the run directory (default: the rule file's name, else observe)"},
			&cli.StringFlag{Name: "runs", Value: lab.DefaultRunsDir, Usage: "where run directories go"},
			&cli.StringFlag{Name: "schedule", Value: lab.DefaultSchedule, Usage: "gaps between request starts: a list like 10x1s,40x200ms"},
			&cli.DurationFlag{Name: "quiet", Value: lab.DefaultQuiet, Usage: "how long to keep watching after the client stopped"},
			&cli.StringFlag{Name: "close", Value: "close", Usage: "device close: close (FIN once the response is acked), wait (for the client's FIN), abort (RST)"},
			&cli.IntFlag{Name: "size", Value: lab.DefaultSize, Usage: "response body octets"},
			&cli.IntFlag{Name: "pool", Value: lab.DefaultPool, Usage: "lwIP pcbs (active + TIME_WAIT) as the ESP8266's MEMP_NUM_TCP_PCB; 0: no limit"},
			&cli.BoolFlag{Name: "busy-close", Usage: "the lwIP device takes in no acknowledgment of its own FIN (a device too busy at close)"},
			&cli.DurationFlag{Name: "time-wait", Usage: "lwIP TIME_WAIT length (default lwIP's 2*TCP_MSL = 120s)"},
			&cli.StringFlag{Name: "ports", Usage: "client local port range LOW-HIGH, e.g. 40000-40001 to force 4-tuple reuse"},
			&cli.IntFlag{Name: "concurrency", Value: 1, Usage: "requests in flight at most"},
			&cli.BoolFlag{Name: "linger0", Usage: "client sets SO_LINGER 0 (its close sends RST)"},
			&cli.BoolFlag{Name: "random-ports", Usage: "client picks each local port at random in its range (not the kernel's sequential search)"},
			&cli.StringFlag{Name: "client-close", Value: "head", Usage: "head: close once the response head is in (races the device's FIN, as curl -I); eof: wait for the device's close first"},
			&cli.DurationFlag{Name: "timeout", Value: lab.DefaultTimeout, Usage: "per-request timeout; 0: the kernel's SYN retries decide"},
			&cli.StringFlag{Name: "rfc1337", Usage: "client net.ipv4.tcp_rfc1337 (0 or 1; default: the kernel's)"},
			&cli.StringFlag{Name: "tw-reuse", Usage: "client net.ipv4.tcp_tw_reuse (0, 1 or 2)"},
			&cli.StringFlag{Name: "timestamps", Usage: "client net.ipv4.tcp_timestamps (0, 1 or 2)"},
			&cli.StringFlag{Name: "fin-timeout", Usage: "client net.ipv4.tcp_fin_timeout in seconds"},
			&cli.StringSliceFlag{Name: "sysctl", Usage: "other client sysctl KEY=VALUE (repeat)"},
			&cli.Int64Flag{Name: "seed", Usage: "seed recorded in run.yaml and handed to the middlebox (default: from the clock)"},
			&cli.StringFlag{Name: "name", Usage: "namespace name part (default l<pid>; namespaces are cd-<name>-client, ...)"},
			&cli.BoolFlag{Name: "lab-summary", Usage: "report the analysis the run fed while it went on, without reading the run directory again"},
			&cli.StringSliceFlag{Name: "mitigation", Usage: "switch this middlebox mitigation on for the run (repeat; " + strings.Join(mitigate.Names(), ", ") + ")"},
			&cli.StringFlag{Name: "ab", Usage: "run the workload twice, without and with mitigation or endpoint fix `NAME`, and compare (alone: the experiment NAME targets)"},
			&cli.BoolFlag{Name: "matrix", Usage: "run every library experiment against lwIP and Linux at once and print the table (matrix.json, matrix.html)"},
			&cli.StringSliceFlag{Name: "experiments", Usage: "with --matrix: only these library experiments (repeat; default all)"},
			&cli.StringSliceFlag{Name: "devices", Usage: "with --matrix: only these devices (default lwip and linux)"},
			&cli.BoolFlag{Name: "fixes", Usage: "with --matrix: also run each experiment that duels with each middlebox mitigation, and the TIME_WAIT reuse experiment with each endpoint fix"},
			&cli.IntFlag{Name: "parallel", Value: defaultMatrixParallel, Usage: "with --matrix: benches running at once (0: all; more cells than that run in waves)"},
		},
		Action: labAction,
		Subcommands: []*cli.Command{
			labUpCommand(),
			labDownCommand(),
			labHelper(lab.HelperClient, "run the workload (inside the client namespace)"),
			labHelper(lab.HelperLinuxDevice, "serve as the Linux device (inside the device namespace)"),
		},
	}
}

// labHelper is a hidden subcommand the lab starts inside its namespaces.
func labHelper(name, usage string) *cli.Command {
	return &cli.Command{
		Name: name, Hidden: true, Usage: usage,
		Flags: []cli.Flag{&cli.StringFlag{Name: "config", Required: true, Usage: "JSON config"}},
		Action: func(c *cli.Context) error {
			return lab.RunHelper(c.Context, name, c.String("config"), c.App.Writer)
		},
	}
}

func labAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return &exitError{code: 2, err: fmt.Errorf("lab: unexpected argument %q (flags only; see closeduel lab --help)", c.Args().First())}
	}
	if c.IsSet("ab") {
		return labAB(c)
	}
	bad := func(err error) error { return &exitError{code: 2, err: err} }
	if c.Bool("matrix") {
		return matrixAction(c)
	}
	f, err := loadRules(c.Context, c.String("rules"), false)
	if err != nil {
		return bad(err)
	}
	warnRules(logger(c), f)
	vals := mergeLabSettings(c, f)
	cfg, err := vals.config()
	if err != nil {
		return bad(err)
	}
	cfg.Experiment, cfg.RunsDir, cfg.Command, cfg.Version = c.String("experiment"), c.String("runs"), os.Args, version
	cfg.Seed, cfg.Rules, cfg.Name = c.Int64("seed"), c.String("rules"), c.String("name")
	cfg.Expect = labExpectations(f, cfg.Device)
	if !c.Bool("no-inline") {
		if err := labMitigations(c, f); err != nil {
			return bad(err)
		}
		labInline(&cfg, f, c.IsSet("seed"))
	}
	if cfg.Experiment == "" && cfg.Rules != "" {
		cfg.Experiment = strings.TrimSuffix(filepath.Base(cfg.Rules), filepath.Ext(cfg.Rules))
	}
	if cfg.Experiment == "" && cfg.Device == lab.DeviceLinux {
		cfg.Experiment = lab.DefaultExperiment + "-linux"
	}
	if !c.Bool("lab-summary") {
		// An interrupted run is still analysed.
		cfg.Report = analysisReport(context.WithoutCancel(c.Context))
	}
	out := c.App.Writer
	if out == nil {
		out = os.Stdout
	}
	cfg.Out = out
	cfg.Progress = os.Stderr
	cfg.Live = isTerminal(os.Stderr)
	if os.Geteuid() != 0 {
		return fmt.Errorf("lab: the bench needs root (network namespaces, taps, NFQUEUE): run it with sudo")
	}
	res, err := lab.Run(c.Context, cfg)
	if res != nil {
		fmt.Fprintf(out, "run directory: %s\n", res.Dir)
	}
	return err
}

// labInline puts the engine with rule file f on the bench. The seed in
// run.yaml is the one the rules draw from: --seed (seedSet) overrides the
// rule file's, and a file without one gets the run's. The roles' stacks are
// the bench's (client Linux, the device's kind), whatever f's stacks: say.
func labInline(cfg *lab.Config, f *rules.File, seedSet bool) {
	switch {
	case seedSet:
		f.Seed = uint64(cfg.Seed)
	case f.Seed != 0:
		cfg.Seed = int64(f.Seed)
	default:
		cfg.Seed = time.Now().UnixNano()
		f.Seed = uint64(cfg.Seed)
	}
	if cfg.Experiment == "" && cfg.Rules != "" && f.Experiment != "" {
		cfg.Experiment = f.Experiment
	}
	if f.HasRoles() {
		// The rules' tracker assumes the stacks the bench runs, as the
		// lab's analysis does: the rule file's stacks: name the device
		// the experiment was written for, the bench may run the other.
		f.Stacks[rules.Client], f.Stacks[rules.Device] = lab.ClientStack, cfg.Device.Stack()
	}
	var mits []string
	for _, n := range mitigate.All() {
		if f.Mitigations.Has(n) {
			mits = append(mits, n.String())
		}
	}
	cfg.Inline = &lab.Engine{Decider: rules.NewDecider(f, rules.Options{}), Rules: cfg.Rules, RulesSHA256: f.SHA256,
		Experiment: f.Experiment, Version: version, Summary: summaryFields, Mitigations: mits}
}

// labMitigations switches on the mitigations --mitigation names in f.
func labMitigations(c *cli.Context, f *rules.File) error {
	for _, name := range c.StringSlice("mitigation") {
		n, ok := mitigate.ParseName(name)
		if !ok {
			return fmt.Errorf("lab: --mitigation %q: no such mitigation; the mitigations are %s", name, strings.Join(mitigate.Names(), ", "))
		}
		if !f.HasRoles() {
			return fmt.Errorf("lab: --mitigation %s needs a rule file with hosts: (--rules), to tell the client from the device", name)
		}
		f.Mitigations = f.Mitigations.With(n, true)
	}
	return nil
}

// labExpectations returns the rule file's expectations about a device.
func labExpectations(f *rules.File, dev lab.DeviceKind) []lab.Expectation {
	var out []lab.Expectation
	for _, e := range f.ExpectFor(dev.String()) {
		out = append(out, lab.Expectation{Figure: e.Figure, Lo: e.Lo, Hi: e.Hi, Want: strings.TrimPrefix(e.String(), e.Figure+" ")})
	}
	return out
}

// analysisReport writes the analysis report of the run directory (as
// closeduel analyze --run gives it) followed by the lab's section; when
// that analysis fails it says why and writes the analysis the run fed
// instead.
func analysisReport(ctx context.Context) func(io.Writer, *lab.Result) error {
	return func(w io.Writer, r *lab.Result) error {
		rep, err := analysis.AnalyzeRun(ctx, r.Dir)
		if err == nil {
			if err = writeFile(filepath.Join(r.Dir, "report.json"), func(w io.Writer) error { return writeJSON(w, rep) }); err != nil {
				return err
			}
			if err = analysis.WriteText(w, rep, analysis.TextOptions{}); err == nil {
				fmt.Fprintln(w)
				return lab.WriteSummaryReport(w, r)
			}
		}
		fmt.Fprintf(w, "analysis of the run directory failed (%v); the analysis the run fed follows\n\n", err)
		return lab.WriteReport(w, r)
	}
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
