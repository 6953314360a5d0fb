package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/closeduel/closeduel/bridgehook"
	"github.com/closeduel/closeduel/lab"
	"github.com/closeduel/closeduel/topology"
)

// cleanupCommand is `closeduel cleanup`: removes what a crashed run left.
func cleanupCommand() *cli.Command {
	return &cli.Command{
		Name:  "cleanup",
		Usage: "remove what a crashed run left behind",
		Description: `Removes closeduel's iptables chains (CLOSEDUEL-*) and the jumps to them in the
current namespace (or --netns), and the namespaces (with their interfaces) of lab
runs whose process is gone; --all removes every closeduel namespace (cd-*), live
or not. Nothing else is touched. --dry-run only lists what would go.` + examples(
			"closeduel cleanup --dry-run",
			"closeduel cleanup --netns cd-demo-bridge",
		),
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "netns", Usage: "clean iptables chains in this named namespace instead of the current one"},
			&cli.BoolFlag{Name: "dry-run", Usage: "list what would be removed, remove nothing"},
			&cli.BoolFlag{Name: "all", Usage: "remove every closeduel namespace, also those of runs still going"},
		},
		Action: func(c *cli.Context) error {
			ns := c.String("netns")
			out := c.App.Writer
			if c.Bool("dry-run") {
				left, err := bridgehook.Leftovers(c.Context, ns)
				if err != nil {
					return fmt.Errorf("cleanup: %w", err)
				}
				for _, l := range left {
					fmt.Fprintln(out, "would remove rule:", l)
				}
				spaces, err := topology.Leftovers("")
				if err != nil {
					return fmt.Errorf("cleanup: %w", err)
				}
				for _, s := range spaces {
					fmt.Fprintln(out, "would remove namespace:", s)
				}
				return nil
			}
			chains, herr := bridgehook.Cleanup(c.Context, ns)
			for _, ch := range chains {
				fmt.Fprintln(out, "removed chain:", ch)
			}
			var spaces []string
			var terr error
			if c.Bool("all") {
				spaces, terr = topology.Sweep("")
			} else {
				spaces, terr = lab.SweepStale()
			}
			for _, s := range spaces {
				fmt.Fprintln(out, "removed namespace:", s)
			}
			if herr != nil || terr != nil {
				return fmt.Errorf("cleanup: %w", errors.Join(herr, terr))
			}
			if len(chains) == 0 && len(spaces) == 0 {
				fmt.Fprintln(out, "nothing to clean")
			}
			return nil
		},
	}
}
