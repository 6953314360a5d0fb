package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/closeduel/closeduel/bench"
	"github.com/closeduel/closeduel/nfq"
)

// benchCommand is `closeduel bench`: the interleaved speed comparison.
func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure the engine against the kernel bridge and the C NFQUEUE anchor, interleaved",
		Description: `Builds a bench (client, bridge, Linux device), then measures request/response
rate, connection churn and bulk throughput with nothing inline (the kernel limit),
with the C libnetfilter_queue pass-through from shared/anchors, and with
closeduel run, in a random order per round; prints medians and ratios.` + examples(
			"closeduel bench",
			"closeduel bench --rounds 5 --workload rr --mode kernel --mode closeduel",
		),
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "rounds", Value: 3, Usage: "rounds; every cell is measured once per round"},
			&cli.DurationFlag{Name: "duration", Value: 3 * time.Second, Usage: "length of one cell"},
			&cli.StringSliceFlag{Name: "workload", Usage: "rr, churn, bulk (repeat; default all)"},
			&cli.StringSliceFlag{Name: "mode", Usage: "kernel, c-anchor, closeduel, closeduel+log, closeduel+log+nopoll, closeduel+log+rt, closeduel+log+2q, closeduel+20rules, closeduel+metrics, go-nfqueue (repeat; \"all\" for every one; default the first three)"},
			&cli.IntSliceFlag{Name: "delay-rate", Usage: "packet rates at which to measure the precision of held packets' delays, once per round (repeat; e.g. 1000 and 20000)"},
			&cli.StringFlag{Name: "anchor", Usage: "path of nfq-c-pass.c (default: shared/anchors beside the repository)"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the cell order"},
		},
		Action: func(c *cli.Context) error {
			cfg := bench.Config{
				Rounds: c.Int("rounds"), Duration: c.Duration("duration"),
				AnchorSource: c.String("anchor"), Seed: c.Uint64("seed"), Progress: c.App.Writer,
			}
			for _, w := range c.StringSlice("workload") {
				cfg.Workloads = append(cfg.Workloads, bench.Workload(w))
			}
			for _, m := range c.StringSlice("mode") {
				if m == "all" {
					cfg.Modes = append(cfg.Modes, bench.AllModes...)
					continue
				}
				cfg.Modes = append(cfg.Modes, bench.Mode(m))
			}
			cfg.DelayRates = c.IntSlice("delay-rate")
			rep, err := bench.Run(c.Context, cfg)
			if rep != nil {
				rep.Write(c.App.Writer)
			}
			return err
		},
		Subcommands: []*cli.Command{
			{
				Name: "serve", Hidden: true, Usage: "answer the bench workloads (runs in the device namespace)",
				Flags: []cli.Flag{&cli.StringFlag{Name: "addr", Required: true}},
				Action: func(c *cli.Context) error {
					return bench.Serve(c.Context, c.String("addr"))
				},
			},
			{
				Name: "libpass", Hidden: true, Usage: "accept every packet through go-nfqueue's callback API (a reference)",
				Flags: []cli.Flag{&cli.UintFlag{Name: "queue", Required: true}},
				Action: func(c *cli.Context) error {
					n, err := nfq.LibraryPass(c.Context, uint16(c.Uint("queue")))
					fmt.Fprintf(c.App.Writer, "packets %d\n", n)
					return err
				},
			},
			{
				Name: "load", Hidden: true, Usage: "drive one workload and print its figure (runs in the client namespace)",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "workload", Required: true},
					&cli.StringFlag{Name: "addr", Required: true},
					&cli.DurationFlag{Name: "duration", Value: 3 * time.Second},
				},
				Action: func(c *cli.Context) error {
					fig, err := bench.Load(c.Context, bench.Workload(c.String("workload")), c.String("addr"), c.Duration("duration"))
					if err != nil {
						return err
					}
					// value, then the round trip's p50 and p99 in µs
					fmt.Fprintf(c.App.Writer, "%.3f %.3f %.3f\n", fig.Value, float64(fig.P50)/1e3, float64(fig.P99)/1e3)
					return nil
				},
			},
			{
				Name: "pace", Hidden: true, Usage: "send one-byte segments at a fixed rate and print how many (runs in the client namespace)",
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "rate", Required: true},
					&cli.StringFlag{Name: "addr", Required: true},
					&cli.DurationFlag{Name: "duration", Value: 3 * time.Second},
				},
				Action: func(c *cli.Context) error {
					n, err := bench.Pace(c.Context, c.String("addr"), c.Int("rate"), c.Duration("duration"))
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "%d\n", n)
					return nil
				},
			},
		},
	}
}
