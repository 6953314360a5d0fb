package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/closeduel/closeduel/analysis"
	"github.com/closeduel/closeduel/tcpstate"
	"github.com/urfave/cli/v2"
)

// analyzeCommand reads captures and verdict logs and reports connections,
// closes and duels.
func analyzeCommand() *cli.Command {
	return &cli.Command{
		Name:      "analyze",
		Usage:     "analyse captures and verdict logs: connections, closes, duels",
		ArgsUsage: "FILE... | --run DIR | --compare A B",
		Description: "Reads pcap/pcapng captures (Ethernet with VLAN tags and tunnels, Linux SLL/SLL2,\n" +
			"raw IP, BSD loopback, PPP, Cisco HDLC, NFLOG), closeduel's pcapng with verdict\n" +
			"comments and its JSON Lines verdict logs, merged by time.\n" +
			"A or B of --compare is a file or a run directory. analysis/DEFINITIONS.md defines every figure." + examples(
			"closeduel analyze capture.pcapng verdicts.jsonl",
			"closeduel analyze --run runs/20260101-120000-observe --html report.html",
			"closeduel analyze --compare runs/A runs/B",
			"closeduel analyze --json capture.pcapng | jq .totals",
		),
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "write the report as JSON (schema " + analysis.SchemaVersion + ")"},
			&cli.StringFlag{Name: "html", Usage: "also write a self-contained HTML report to `FILE`"},
			&cli.StringFlag{Name: "run", Usage: "lab run `DIR`: read its run.yaml (workload_start, workload_end); with no FILE, analyse its captures and logs"},
			&cli.BoolFlag{Name: "split", Usage: "also cut the run at its mitigation switches (the verdict log's mitigation records): figures per phase"},
			&cli.BoolFlag{Name: "compare", Usage: "compare two runs or captures given as the two arguments A B"},
			&cli.DurationFlag{Name: "max-backoff", Value: 120 * time.Second, Usage: "longest retransmission back-off of the stacks: quiet time on a tuple that ends a duel"},
			&cli.DurationFlag{Name: "idle-timeout", Value: 5 * time.Minute, Usage: "quiet time after which a connection that no endpoint holds open (ESTABLISHED, CLOSE-WAIT) is forgotten"},
			&cli.DurationFlag{Name: "msl", Value: 60 * time.Second, Usage: "maximum segment lifetime: TIME_WAIT is taken to last 2*MSL"},
			&cli.IntFlag{Name: "max-tuples", Value: analysis.DefaultMaxTuples, Usage: "4-tuples held at once; beyond, the least recently active is forgotten (counted)"},
			&cli.StringSliceFlag{Name: "stack", Usage: "`ADDR=STACK`: the stack (linux, lwip, rfc9293) of an address or prefix, for its TIME_WAIT length and RST handling; repeatable"},
			&cli.StringSliceFlag{Name: "time-wait", Usage: "`STACK=DURATION`: how long that stack holds TIME_WAIT (default: linux 60s, others 2*MSL); repeatable"},
			&cli.IntFlag{Name: "max-connections", Value: 5000, Usage: "connection rows kept in the report"},
			&cli.BoolFlag{Name: "all", Usage: "list every connection in the text report, not only those that did not close cleanly"},
			&cli.IntFlag{Name: "rows", Value: 20, Usage: "rows per text table"},
		},
		Action: analyzeAction,
	}
}

func analyzeAction(c *cli.Context) error {
	cfg := analysis.Config{
		MaxBackoff:     c.Duration("max-backoff"),
		IdleTimeout:    c.Duration("idle-timeout"),
		MSL:            c.Duration("msl"),
		MaxTuples:      c.Int("max-tuples"),
		MaxConnections: c.Int("max-connections"),
	}
	if err := stackFlags(c, &cfg); err != nil {
		return &exitError{code: 2, err: err}
	}
	out := c.App.Writer
	if out == nil {
		out = os.Stdout
	}
	if c.Bool("compare") {
		if c.NArg() != 2 {
			return &exitError{code: 2, err: errors.New("analyze: --compare takes two arguments: A B (files or run directories)")}
		}
		a, err := analyzeOne(c, cfg, c.Args().Get(0))
		if err != nil {
			return err
		}
		b, err := analyzeOne(c, cfg, c.Args().Get(1))
		if err != nil {
			return err
		}
		cmp := analysis.Compare(a, b)
		if p := c.String("html"); p != "" {
			if err := writeFile(p, func(w io.Writer) error { return analysis.WriteCompareHTML(w, cmp) }); err != nil {
				return err
			}
		}
		if c.Bool("json") {
			return writeJSON(out, cmp)
		}
		return analysis.WriteCompareText(out, cmp)
	}
	paths := c.Args().Slice()
	if dir := c.String("run"); dir != "" {
		run, err := analysis.ReadRun(dir)
		if err != nil {
			return err
		}
		cfg.Run = run
		if len(paths) == 0 {
			if paths, err = analysis.RunInputs(dir); err != nil {
				return err
			}
		}
	}
	if len(paths) == 0 {
		return &exitError{code: 2, err: errors.New("analyze: give capture or log files, or --run DIR")}
	}
	r, err := untilDone(c.Context, func() (*analysis.Report, error) { return analysis.Analyze(c.Context, cfg, paths) })
	if err != nil {
		return err
	}
	if p := c.String("html"); p != "" {
		if err := writeFile(p, func(w io.Writer) error { return analysis.WriteHTML(w, r) }); err != nil {
			return err
		}
	}
	var split *analysis.Split
	if c.Bool("split") {
		if split, err = splitOf(r, paths); err != nil {
			return err
		}
	}
	if c.Bool("json") {
		if split != nil {
			return writeJSON(out, struct {
				Report *analysis.Report `json:"report"`
				Split  *analysis.Split  `json:"split"`
			}{r, split})
		}
		return writeJSON(out, r)
	}
	if err := analysis.WriteText(out, r, analysis.TextOptions{MaxRows: c.Int("rows"), AllConnections: c.Bool("all")}); err != nil || split == nil {
		return err
	}
	fmt.Fprintln(out)
	return analysis.WriteSplitText(out, split)
}

// splitOf cuts r at the mitigation switches of the JSON Lines logs among
// paths.
func splitOf(r *analysis.Report, paths []string) (*analysis.Split, error) {
	var sw []analysis.Switch
	for _, p := range paths {
		if in := inputFormat(p); in != analysis.FormatJSONL {
			continue
		}
		s, err := analysis.ReadSwitches(p)
		if err != nil {
			return nil, err
		}
		sw = append(sw, s...)
	}
	return analysis.SplitReport(r, sw), nil
}

// inputFormat detects a file's format from its first bytes.
func inputFormat(path string) analysis.Format {
	f, err := os.Open(path)
	if err != nil {
		return analysis.FormatUnknown
	}
	defer f.Close()
	head := make([]byte, 16)
	n, _ := io.ReadFull(f, head)
	return analysis.DetectFormat(head[:n])
}

// analyzeOne analyses a file or a run directory for --compare.
func analyzeOne(c *cli.Context, cfg analysis.Config, path string) (*analysis.Report, error) {
	paths := []string{path}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		var err error
		if paths, err = analysis.RunInputs(path); err != nil {
			return nil, err
		}
		if run, err := analysis.ReadRun(path); err == nil {
			cfg.Run = run
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	return untilDone(c.Context, func() (*analysis.Report, error) { return analysis.Analyze(c.Context, cfg, paths) })
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("analyze: write json: %w", err)
	}
	return nil
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("analyze: %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	return nil
}

// untilDone returns fn's result, or ctx's error as soon as ctx is done
// (SIGINT, SIGTERM) even when fn is blocked in a read that does not heed
// ctx (a FIFO given as a capture): fn then goes on in the background and
// is dropped when the process exits.
func untilDone[T any](ctx context.Context, fn func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := fn()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, fmt.Errorf("analyze: interrupted: %w", context.Cause(ctx))
	}
}

// stackFlags reads --stack and --time-wait into cfg.
func stackFlags(c *cli.Context, cfg *analysis.Config) error {
	type rule struct {
		p     netip.Prefix
		stack tcpstate.Stack
	}
	var rules []rule
	for _, v := range c.StringSlice("stack") {
		k, name, ok := strings.Cut(v, "=")
		st, known := tcpstate.ParseStack(name)
		if !ok || !known {
			return fmt.Errorf("analyze: --stack %q: want ADDR=STACK with STACK one of %s", v, strings.Join(tcpstate.StackNames(), ", "))
		}
		p, err := netip.ParsePrefix(k)
		if err != nil {
			a, aerr := netip.ParseAddr(k)
			if aerr != nil {
				return fmt.Errorf("analyze: --stack %q: %q is no address or prefix", v, k)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		rules = append(rules, rule{p, st})
	}
	if len(rules) > 0 {
		cfg.Stack = func(a netip.AddrPort) tcpstate.Stack {
			for _, r := range rules {
				if r.p.Contains(a.Addr().Unmap()) {
					return r.stack
				}
			}
			return tcpstate.RFC9293
		}
	}
	for _, v := range c.StringSlice("time-wait") {
		name, d, ok := strings.Cut(v, "=")
		st, known := tcpstate.ParseStack(name)
		dur, err := time.ParseDuration(d)
		if !ok || !known || err != nil || dur <= 0 {
			return fmt.Errorf("analyze: --time-wait %q: want STACK=DURATION, e.g. lwip=120s", v)
		}
		cfg.TimeWait[st] = dur
	}
	return nil
}
