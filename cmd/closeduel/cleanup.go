package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"
)

// cleanupCommand is `closeduel cleanup`: removes what a crashed run left.
func cleanupCommand() *cli.Command {
	return &cli.Command{
		Name:  "cleanup",
		Usage: "remove what a crashed run left behind, and never what a live run uses",
		Description: `Looks at closeduel's iptables chains (CLOSEDUEL-*) and nft tables (bridge
closeduel-*, of run --vlan-tags) in the current namespace (or
--netns) and in every closeduel namespace (cd-*), its control sockets in
/run/closeduel, and its namespaces, tells a live run's from a crashed one's, says
which it found and removes only the crashed ones': a chain or table whose queue no process
has bound in its namespace, a control socket nobody answers on, the namespaces of
a lab run whose process is gone or of a lab up bench whose device server is gone.
A live run's chain, socket or namespaces are never touched (stop the run, or
closeduel lab down). Namespaces whose owner cannot be told (not a lab run's, not a
lab up bench's) are kept unless --all, and never while a queue is bound or a
process is inside one of their bench's namespaces.
--name limits the namespaces (and pid files) looked into to one bench's, cd-NAME-*.
--dry-run says exactly what the same command without it would do, and does nothing.` + examples(
			"closeduel cleanup --dry-run",
			"closeduel cleanup --netns cd-demo-bridge",
			"closeduel cleanup --name demo",
		),
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "netns", Usage: "look for iptables chains in this named namespace instead of the current one"},
			&cli.StringFlag{Name: "name", Usage: "only bench `NAME`'s namespaces (cd-NAME-*) and pid file, not every closeduel namespace (a lab run's name is l<pid>)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "say what would be removed and kept, remove nothing"},
			&cli.BoolFlag{Name: "all", Usage: "also remove closeduel namespaces whose owner cannot be told (never a live run's)"},
		},
		Action: func(c *cli.Context) error {
			scope := cleanupScope{netns: c.String("netns"), name: c.String("name"), all: c.Bool("all"), stateDir: labStateDir}
			items, err := cleanupPlan(c.Context, &systemHost{}, scope)
			if err != nil {
				return fmt.Errorf("cleanup: %w", err)
			}
			return carryOut(items, c.Bool("dry-run"), c.App.Writer)
		},
	}
}

// carryOut says what is kept and what goes, and removes it unless dry,
// then what it found in all.
func carryOut(items []cleanupItem, dry bool, out io.Writer) error {
	var errs []error
	removed, kept := 0, 0
	for _, it := range items {
		switch {
		case it.keep:
			kept++
			verb := "kept"
			if dry {
				verb = "would keep"
			}
			fmt.Fprintf(out, "%s %s: %s\n", verb, it.what, it.why)
		case dry:
			removed++
			fmt.Fprintf(out, "would remove %s: %s\n", it.what, it.why)
		default:
			if err := it.remove(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", it.what, err))
				continue
			}
			removed++
			fmt.Fprintf(out, "removed %s: %s\n", it.what, it.why)
		}
	}
	if len(items) == 0 {
		fmt.Fprintln(out, "nothing to clean: no closeduel chain, control socket or namespace")
	} else {
		rm, kp := "removed", "kept"
		if dry {
			rm, kp = "would remove", "would keep"
		}
		fmt.Fprintf(out, "found %s: %s %d, %s %d (in use by live runs, or of unknown owner)\n", foundSummary(items), rm, removed, kp, kept)
	}
	if len(errs) > 0 {
		return fmt.Errorf("cleanup: %w", errors.Join(errs...))
	}
	return nil
}
