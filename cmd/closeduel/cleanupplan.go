package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/closeduel/closeduel/bridgehook"
	"github.com/closeduel/closeduel/netns"
	"github.com/closeduel/closeduel/runstate"
	"github.com/closeduel/closeduel/topology"
)

// cleanupScope says where cleanup looks.
type cleanupScope struct {
	// netns is where to look for chains instead of the current namespace.
	netns string
	// name, when set, limits the namespaces looked into to cd-<name>-*
	// and the pid files to that bench's.
	name string
	// all removes namespaces of unknown owner too.
	all bool
	// stateDir holds control sockets and lab up pid files.
	stateDir string
}

// cleanupHost is what cleanup reads of the system and how it removes
// things: the seam that lets its decisions be tested without root.
type cleanupHost interface {
	// Chains lists closeduel's chains in namespace ns ("" current).
	Chains(ctx context.Context, ns string) ([]bridgehook.Chain, error)
	// BoundQueues lists the NFQUEUEs bound in ns, with their holders.
	BoundQueues(ns string) ([]runstate.Queue, error)
	// Namespaces lists the named namespaces starting with prefix.
	Namespaces(prefix string) ([]string, error)
	// Alive reports whether process pid exists.
	Alive(pid int) bool
	// SocketAnswers reports whether a Unix socket accepts a connection.
	SocketAnswers(path string) bool
	// RemoveChain removes chain c of namespace ns with its jumps.
	RemoveChain(ctx context.Context, ns string, c bridgehook.Chain) error
	// DeleteNamespace removes a named namespace.
	DeleteNamespace(name string) error
	// Inside returns the processes one of whose threads is in named
	// namespace ns.
	Inside(ns string) []int
}

// systemHost is the real cleanupHost.
type systemHost struct {
	users map[uint64][]int // runstate.NamespaceUsers, read once
}

func (h *systemHost) Inside(ns string) []int {
	ino, err := runstate.NamespaceInode(netns.Path(ns))
	if err != nil {
		return nil
	}
	if h.users == nil {
		h.users = runstate.NamespaceUsers()
	}
	return h.users[ino]
}

func (*systemHost) Chains(ctx context.Context, ns string) ([]bridgehook.Chain, error) {
	return bridgehook.Chains(ctx, ns)
}
func (*systemHost) BoundQueues(ns string) ([]runstate.Queue, error) { return runstate.BoundQueues(ns) }
func (*systemHost) Namespaces(prefix string) ([]string, error)      { return netns.List(prefix) }
func (*systemHost) Alive(pid int) bool                              { return runstate.Alive(pid) }
func (*systemHost) SocketAnswers(path string) bool                  { return runstate.SocketAnswers(path) }
func (*systemHost) RemoveChain(ctx context.Context, ns string, c bridgehook.Chain) error {
	return bridgehook.RemoveChain(ctx, ns, c)
}
func (*systemHost) DeleteNamespace(name string) error { return netns.Delete(name) }

// cleanupItem is one thing cleanup found, with its verdict.
type cleanupItem struct {
	kind   string // "chain", "control socket", "namespace", "pid file"
	what   string // "chain iptables CLOSEDUEL-7", "namespace cd-demo-client"
	keep   bool
	why    string
	remove func() error // nil when kept
	// unknownOwner: a namespace neither a lab run's nor a lab up bench's.
	unknownOwner bool
}

// foundSummary counts items by kind: "2 chains, 1 namespace".
func foundSummary(items []cleanupItem) string {
	var kinds []string
	n := map[string]int{}
	for _, it := range items {
		if n[it.kind] == 0 {
			kinds = append(kinds, it.kind)
		}
		n[it.kind]++
	}
	var parts []string
	for _, k := range kinds {
		s := k
		if n[k] != 1 {
			s += "s"
		}
		parts = append(parts, fmt.Sprintf("%d %s", n[k], s))
	}
	return strings.Join(parts, ", ")
}

// cleanupPlan finds closeduel's chains (in the current namespace or
// scope.netns, and in every closeduel namespace), control sockets and pid
// files in scope.stateDir, and namespaces, and judges each: live (kept)
// or left by a crashed run (removed).
func cleanupPlan(ctx context.Context, h cleanupHost, scope cleanupScope) ([]cleanupItem, error) {
	var items []cleanupItem
	scanned := map[string]bool{}
	chains, err := judgeChains(ctx, h, scope.netns)
	if err != nil {
		return nil, err
	}
	items = append(items, chains...)
	scanned[scope.netns] = true
	// Control sockets: live while something answers on them.
	socks, _ := filepath.Glob(filepath.Join(scope.stateDir, "*.sock"))
	for _, s := range socks {
		it := cleanupItem{kind: "control socket", what: "control socket " + s}
		if h.SocketAnswers(s) {
			it.keep, it.why = true, "live run: it answers"
		} else {
			it.why = "nobody answers on it: a crashed run's"
			it.remove = func() error { return os.Remove(s) }
		}
		items = append(items, it)
	}
	// Namespaces, each after the chains in it.
	prefix := topology.NamePrefix
	if scope.name != "" {
		prefix += scope.name + "-"
	}
	names, err := h.Namespaces(prefix)
	if err != nil {
		return nil, err
	}
	// The queues bound in each, and the benches (cd-<bench>-<role>) with
	// a live run in one of their namespaces.
	queues := make([][]runstate.Queue, len(names))
	qerrs := make([]error, len(names))
	inside := make([][]int, len(names))
	live := map[string]string{}
	for i, n := range names {
		queues[i], qerrs[i] = h.BoundQueues(n)
		inside[i] = h.Inside(n)
		switch {
		case len(queues[i]) > 0:
			live[benchOf(n)] = fmt.Sprintf("%s has queue %d bound by %s", n, queues[i][0].Number, queues[i][0].Describe())
		case len(inside[i]) > 0 && live[benchOf(n)] == "":
			live[benchOf(n)] = fmt.Sprintf("%s has %s inside", n, describePid(inside[i][0]))
		}
	}
	benches := map[string]bool{}
	for i, n := range names {
		if qerrs[i] != nil {
			// Not readable: judged as if something were bound.
			items = append(items, cleanupItem{kind: "namespace", what: "namespace " + n, keep: true,
				why: fmt.Sprintf("its bound queues cannot be read (%v): kept", qerrs[i])})
			continue
		}
		if !scanned[n] {
			chains, err := h.Chains(ctx, n)
			if err != nil {
				return nil, err
			}
			for _, ch := range chains {
				items = append(items, judgeChain(ctx, h, n, ch, queues[i]))
			}
		}
		it := judgeNamespace(h, n, queues[i], inside[i], scope, benches)
		if why, ok := live[benchOf(n)]; ok && it.unknownOwner {
			it.keep, it.why, it.remove = true, "a live run's bench: "+why, nil
		}
		items = append(items, it)
	}
	// Pid files of lab up benches whose namespaces are all gone.
	pattern := "lab-*.pid"
	if scope.name != "" {
		pattern = "lab-" + scope.name + ".pid"
	}
	pids, _ := filepath.Glob(filepath.Join(scope.stateDir, pattern))
	for _, p := range pids {
		bench := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), "lab-"), ".pid")
		if benches[bench] {
			continue
		}
		pid := readPid(p)
		it := cleanupItem{kind: "pid file", what: "pid file " + p}
		if h.Alive(pid) {
			it.keep, it.why = true, fmt.Sprintf("lab up bench %s: its device server (pid %d) is alive", bench, pid)
		} else {
			it.why = "its bench's namespaces and device server are gone"
			it.remove = func() error { return os.Remove(p) }
		}
		items = append(items, it)
	}
	return items, nil
}

// judgeChains judges the chains of namespace ns ("" current).
func judgeChains(ctx context.Context, h cleanupHost, ns string) ([]cleanupItem, error) {
	chains, err := h.Chains(ctx, ns)
	if err != nil {
		return nil, err
	}
	if len(chains) == 0 {
		return nil, nil
	}
	queues, err := h.BoundQueues(ns)
	if err != nil {
		return nil, fmt.Errorf("the queues bound%s: %w", inNetns(ns), err)
	}
	var items []cleanupItem
	for _, ch := range chains {
		items = append(items, judgeChain(ctx, h, ns, ch, queues))
	}
	return items, nil
}

// judgeChain decides about one chain of namespace ns: live while a
// process has its queue bound there.
func judgeChain(ctx context.Context, h cleanupHost, ns string, ch bridgehook.Chain, queues []runstate.Queue) cleanupItem {
	it := cleanupItem{kind: "chain", what: "chain " + ch.Bin + " " + ch.Name + inNetns(ns)}
	if ch.Bin == "nft" {
		it.what = "nft table bridge " + ch.Name + inNetns(ns) // run --vlan-tags'
	}
	if q, bound := chainQueue(ch.Name, queues); bound {
		it.keep, it.why = true, fmt.Sprintf("live run: queue %d is bound by %s", q.Number, q.Describe())
		return it
	}
	it.why = "no process has its queue bound: a crashed run's"
	it.remove = func() error { return h.RemoveChain(ctx, ns, ch) }
	return it
}

func inNetns(ns string) string {
	if ns == "" {
		return ""
	}
	return " in netns " + ns
}

// judgeNamespace decides about one cd-* namespace, in which queues are
// bound and processes are inside. benches collects the lab up benches
// seen.
func judgeNamespace(h cleanupHost, n string, queues []runstate.Queue, inside []int, scope cleanupScope, benches map[string]bool) cleanupItem {
	it := cleanupItem{kind: "namespace", what: "namespace " + n}
	remove := func() error { return h.DeleteNamespace(n) }
	if len(queues) > 0 {
		it.keep, it.why = true, fmt.Sprintf("live run inside: queue %d is bound by %s", queues[0].Number, queues[0].Describe())
		return it
	}
	rest := strings.TrimPrefix(n, topology.NamePrefix)
	// A lab run's: cd-l<pid>-<role> (or cd-l<pid>x<n>-<role>, the lab's
	// tests and the matrix).
	if after, ok := strings.CutPrefix(rest, "l"); ok && strings.Contains(after, "-") {
		digits := after[:len(after)-len(strings.TrimLeft(after, "0123456789"))]
		if pid, err := strconv.Atoi(digits); err == nil && pid > 0 {
			if h.Alive(pid) {
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
		pidPath := filepath.Join(scope.stateDir, "lab-"+bench+".pid")
		if _, err := os.Stat(pidPath); err == nil {
			benches[bench] = true
			pid := readPid(pidPath)
			if h.Alive(pid) {
				it.keep, it.why = true, fmt.Sprintf("lab up bench %s, its device server (pid %d) alive: closeduel lab down --name %s removes it", bench, pid, bench)
				return it
			}
			it.why = fmt.Sprintf("lab up bench %s: its device server (pid %d) is gone", bench, pid)
			it.remove = func() error {
				err := h.DeleteNamespace(n)
				if left, _ := h.Namespaces(topology.NamePrefix + bench + "-"); len(left) == 0 {
					os.Remove(pidPath)
				}
				return err
			}
			return it
		}
	}
	if len(inside) > 0 {
		it.keep, it.why = true, fmt.Sprintf("in use: %s is inside", describePid(inside[0]))
		return it
	}
	it.unknownOwner = true
	if scope.all {
		it.why, it.remove = "owner unknown, and --all", remove
		return it
	}
	it.keep, it.why = true, "owner unknown (not a lab run's nor a lab up bench's; no queue bound, no process inside): --all removes it"
	return it
}

// describePid says "pid 1234 (sleep 30)".
func describePid(pid int) string {
	s := "pid " + strconv.Itoa(pid)
	if cmd := runstate.Cmdline(pid); cmd != "" {
		s += " (" + cmd + ")"
	}
	return s
}

// benchOf returns the bench part of namespace name cd-<bench>-<role>.
func benchOf(n string) string {
	rest := strings.TrimPrefix(n, topology.NamePrefix)
	if i := strings.LastIndexByte(rest, '-'); i > 0 {
		return rest[:i]
	}
	return rest
}

// chainQueue returns the bound queue a chain CLOSEDUEL-...-<n> sends to.
func chainQueue(chain string, queues []runstate.Queue) (runstate.Queue, bool) {
	i := strings.LastIndexByte(chain, '-')
	if i < 0 {
		return runstate.Queue{}, false
	}
	n, err := strconv.ParseUint(chain[i+1:], 10, 16)
	if err != nil {
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
