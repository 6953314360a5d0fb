package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/closeduel/closeduel/bridgehook"
	"github.com/closeduel/closeduel/netns"
	"github.com/closeduel/closeduel/runstate"
	"github.com/closeduel/closeduel/topology"
)

// cleanupCommand is `closeduel cleanup`: removes what a crashed run left.
func cleanupCommand() *cli.Command {
	return &cli.Command{
		Name:  "cleanup",
		Usage: "remove what a crashed run left behind, and never what a live run uses",
		Description: `Looks at closeduel's iptables chains (CLOSEDUEL-*) in the current namespace (or
--netns), its control sockets in /run/closeduel, and its namespaces (cd-*), tells a
live run's from a crashed one's, says which it found and removes only the crashed
ones': a chain whose queue no process has bound, a control socket nobody answers
on, the namespaces of a lab run whose process is gone or of a lab up bench whose
device server is gone. A live run's chain, socket or namespaces are never touched
(stop the run, or closeduel lab down). Namespaces whose owner cannot be told (not
a lab run's, not a lab up bench's) are kept unless --all. --dry-run says exactly
what the same command without it would do, and does nothing.` + examples(
			"closeduel cleanup --dry-run",
			"closeduel cleanup --netns cd-demo-bridge",
		),
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "netns", Usage: "look for iptables chains in this named namespace instead of the current one"},
			&cli.BoolFlag{Name: "dry-run", Usage: "say what would be removed and kept, remove nothing"},
			&cli.BoolFlag{Name: "all", Usage: "also remove closeduel namespaces whose owner cannot be told (never a live run's)"},
		},
		Action: func(c *cli.Context) error {
			items, err := cleanupPlan(c.Context, c.String("netns"), c.Bool("all"), labStateDir)
			if err != nil {
				return fmt.Errorf("cleanup: %w", err)
			}
			return carryOut(items, c.Bool("dry-run"), c.App.Writer)
		},
	}
}

// cleanupItem is one thing cleanup found, with its verdict.
type cleanupItem struct {
	what   string // "chain iptables CLOSEDUEL-7", "namespace cd-demo-client"
	keep   bool
	why    string
	remove func() error // nil when kept
}

// carryOut says what is kept and what goes, and removes it unless dry.
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
	} else if !dry && removed == 0 && len(errs) == 0 {
		fmt.Fprintf(out, "nothing removed: %d in use by live runs or kept\n", kept)
	}
	if len(errs) > 0 {
		return fmt.Errorf("cleanup: %w", errors.Join(errs...))
	}
	return nil
}

// cleanupPlan finds closeduel's chains in ns, control sockets and pid
// files in stateDir, and namespaces, and judges each: live (kept) or left
// by a crashed run (removed).
func cleanupPlan(ctx context.Context, ns string, all bool, stateDir string) ([]cleanupItem, error) {
	var items []cleanupItem
	where := ""
	if ns != "" {
		where = " in netns " + ns
	}
	// Chains: live while a process has their queue bound in ns.
	chains, err := bridgehook.Chains(ctx, ns)
	if err != nil {
		return nil, err
	}
	queues, err := runstate.BoundQueues(ns)
	if err != nil {
		return nil, fmt.Errorf("the queues bound%s: %w", where, err)
	}
	for _, ch := range chains {
		it := cleanupItem{what: "chain " + ch.Bin + " " + ch.Name + where}
		q, bound := chainQueue(ch.Name, queues)
		if bound {
			it.keep, it.why = true, fmt.Sprintf("live run: queue %d is bound by %s", q.Number, q.Describe())
		} else {
			ch := ch
			it.why = "no process has its queue bound: a crashed run's"
			it.remove = func() error { return bridgehook.RemoveChain(ctx, ns, ch) }
		}
		items = append(items, it)
	}
	// Control sockets: live while something answers on them.
	socks, _ := filepath.Glob(filepath.Join(stateDir, "*.sock"))
	for _, s := range socks {
		it := cleanupItem{what: "control socket " + s}
		if runstate.SocketAnswers(s) {
			it.keep, it.why = true, "live run: it answers"
		} else {
			s := s
			it.why = "nobody answers on it: a crashed run's"
			it.remove = func() error { return os.Remove(s) }
		}
		items = append(items, it)
	}
	// Namespaces.
	names, err := netns.List(topology.NamePrefix)
	if err != nil {
		return nil, err
	}
	benches := map[string]bool{}
	for _, n := range names {
		items = append(items, judgeNamespace(n, all, stateDir, benches))
	}
	// Pid files of lab up benches whose namespaces are all gone.
	pids, _ := filepath.Glob(filepath.Join(stateDir, "lab-*.pid"))
	for _, p := range pids {
		bench := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), "lab-"), ".pid")
		if benches[bench] {
			continue
		}
		pid := readPid(p)
		it := cleanupItem{what: "pid file " + p}
		if runstate.Alive(pid) {
			it.keep, it.why = true, fmt.Sprintf("lab up bench %s: its device server (pid %d) is alive", bench, pid)
		} else {
			p := p
			it.why = "its bench's namespaces and device server are gone"
			it.remove = func() error { return os.Remove(p) }
		}
		items = append(items, it)
	}
	return items, nil
}

// judgeNamespace decides about one cd-* namespace. benches collects the
// lab up benches seen.
func judgeNamespace(n string, all bool, stateDir string, benches map[string]bool) cleanupItem {
	it := cleanupItem{what: "namespace " + n}
	remove := func() error { return netns.Delete(n) }
	if qs, err := runstate.BoundQueues(n); err == nil && len(qs) > 0 {
		it.keep, it.why = true, fmt.Sprintf("live run inside: queue %d is bound by %s", qs[0].Number, qs[0].Describe())
		return it
	}
	rest := strings.TrimPrefix(n, topology.NamePrefix)
	// A lab run's: cd-l<pid>-<role> (or cd-l<pid>x<n>-<role>, the lab's
	// tests).
	if after, ok := strings.CutPrefix(rest, "l"); ok && strings.Contains(after, "-") {
		digits := after[:len(after)-len(strings.TrimLeft(after, "0123456789"))]
		if pid, err := strconv.Atoi(digits); err == nil && pid > 0 {
			if runstate.Alive(pid) {
				it.keep, it.why = true, fmt.Sprintf("live lab run (pid %d)", pid)
			} else {
				it.why, it.remove = fmt.Sprintf("its lab run (pid %d) is gone", pid), remove
			}
			return it
		}
	}
	// A lab up bench's: cd-<bench>-client|bridge|device with a pid file.
	if i := strings.LastIndexByte(rest, '-'); i > 0 {
		bench := rest[:i]
		pidPath := filepath.Join(stateDir, "lab-"+bench+".pid")
		if _, err := os.Stat(pidPath); err == nil {
			benches[bench] = true
			pid := readPid(pidPath)
			if runstate.Alive(pid) {
				it.keep, it.why = true, fmt.Sprintf("lab up bench %s, its device server (pid %d) alive: closeduel lab down --name %s removes it", bench, pid, bench)
				return it
			}
			it.why = fmt.Sprintf("lab up bench %s: its device server (pid %d) is gone", bench, pid)
			it.remove = func() error {
				err := netns.Delete(n)
				if left, _ := netns.List(topology.NamePrefix + bench + "-"); len(left) == 0 {
					os.Remove(pidPath)
				}
				return err
			}
			return it
		}
	}
	if all {
		it.why, it.remove = "owner unknown, and --all", remove
		return it
	}
	it.keep, it.why = true, "owner unknown (not a lab run's nor a lab up bench's; no queue bound): --all removes it"
	return it
}

// chainQueue returns the bound queue a chain CLOSEDUEL-...-<n> sends to.
func chainQueue(chain string, queues []runstate.Queue) (runstate.Queue, bool) {
	i := strings.LastIndexByte(chain, '-')
	n, err := strconv.ParseUint(chain[i+1:], 10, 16)
	if i < 0 || err != nil {
		return runstate.Queue{}, false
	}
	for _, q := range queues {
		if q.Number == uint16(n) {
			return q, true
		}
	}
	return runstate.Queue{}, false
}

func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}
