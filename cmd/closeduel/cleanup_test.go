package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/closeduel/closeduel/bridgehook"
	"github.com/closeduel/closeduel/runstate"
)

// fakeHost is a system as cleanup sees it: chains and bound queues per
// namespace ("" the current one), named namespaces, live pids and
// answering sockets. It records what is removed.
type fakeHost struct {
	chains  map[string][]string // "iptables CLOSEDUEL-7"
	queues  map[string][]runstate.Queue
	qerr    map[string]error
	names   []string
	alive   map[int]bool
	answers map[string]bool
	inside  map[string][]int
	removed []string
}

func (f *fakeHost) Chains(_ context.Context, ns string) ([]bridgehook.Chain, error) {
	var out []bridgehook.Chain
	for _, c := range f.chains[ns] {
		bin, name, _ := strings.Cut(c, " ")
		out = append(out, bridgehook.Chain{Bin: bin, Name: name})
	}
	return out, nil
}
func (f *fakeHost) BoundQueues(ns string) ([]runstate.Queue, error) { return f.queues[ns], f.qerr[ns] }
func (f *fakeHost) Namespaces(prefix string) ([]string, error) {
	var out []string
	for _, n := range f.names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out, nil
}
func (f *fakeHost) Inside(ns string) []int         { return f.inside[ns] }
func (f *fakeHost) Alive(pid int) bool             { return f.alive[pid] }
func (f *fakeHost) SocketAnswers(path string) bool { return f.answers[filepath.Base(path)] }
func (f *fakeHost) RemoveChain(_ context.Context, ns string, c bridgehook.Chain) error {
	f.removed = append(f.removed, "chain "+c.Bin+" "+c.Name+inNetns(ns))
	return nil
}
func (f *fakeHost) DeleteNamespace(name string) error {
	f.removed = append(f.removed, "namespace "+name)
	for i, n := range f.names {
		if n == name {
			f.names = append(f.names[:i], f.names[i+1:]...)
			break
		}
	}
	return nil
}

// Pids no process has (above the kernel's pid_max), so Describe names
// no command line.
const (
	livePid = 9000001
	deadPid = 9000002
)

func lab3(stem string) []string {
	return []string{"cd-" + stem + "-bridge", "cd-" + stem + "-client", "cd-" + stem + "-device"}
}

func bound(n uint16, pid int) []runstate.Queue {
	return []runstate.Queue{{Number: n, PortID: 77, PID: pid}}
}

// TestCleanupDecisions: what cleanup keeps and removes, and why, for
// live and crashed runs of every kind, without root: each case is a
// system as cleanup reads it. Then the same plan carried out removes
// exactly what the dry run said it would.
func TestCleanupDecisions(t *testing.T) {
	live := "live run: queue 7 is bound by pid 9000001"
	crashed := "no process has its queue bound: a crashed run's"
	for _, tc := range []struct {
		name  string
		host  fakeHost
		scope cleanupScope
		files map[string]string // in the state directory
		want  []string
		// alsoGone: what goes with the removed (a bench's pid file with
		// its last namespace).
		alsoGone []string
	}{
		{
			name: "nothing",
			want: nil,
		},
		{
			name: "run in the current namespace, live and crashed chains",
			host: fakeHost{
				chains: map[string][]string{"": {"iptables CLOSEDUEL-7", "ip6tables CLOSEDUEL-7", "iptables CLOSEDUEL-9"}},
				queues: map[string][]runstate.Queue{"": bound(7, livePid)},
			},
			want: []string{
				"keep chain iptables CLOSEDUEL-7: " + live,
				"keep chain ip6tables CLOSEDUEL-7: " + live,
				"remove chain iptables CLOSEDUEL-9: " + crashed,
			},
		},
		{
			name: "--netns: chains looked for there, and not again with its namespace",
			host: fakeHost{
				chains: map[string][]string{"": {"iptables CLOSEDUEL-3"}, "cd-demo-bridge": {"iptables CLOSEDUEL-7"}},
				queues: map[string][]runstate.Queue{"cd-demo-bridge": bound(7, livePid)},
				names:  []string{"cd-demo-bridge"},
			},
			scope: cleanupScope{netns: "cd-demo-bridge"},
			want: []string{
				"keep chain iptables CLOSEDUEL-7 in netns cd-demo-bridge: " + live,
				"keep namespace cd-demo-bridge: live run inside: queue 7 is bound by pid 9000001",
			},
		},
		{
			name: "live lab run: its chain and namespaces kept, also with --all",
			host: fakeHost{
				chains: map[string][]string{"cd-l9000001-bridge": {"iptables CLOSEDUEL-7"}},
				queues: map[string][]runstate.Queue{"cd-l9000001-bridge": bound(7, livePid)},
				names:  lab3("l9000001"),
				alive:  map[int]bool{livePid: true},
			},
			scope: cleanupScope{all: true},
			want: []string{
				"keep chain iptables CLOSEDUEL-7 in netns cd-l9000001-bridge: " + live,
				"keep namespace cd-l9000001-bridge: live run inside: queue 7 is bound by pid 9000001",
				"keep namespace cd-l9000001-client: live lab run (pid 9000001)",
				"keep namespace cd-l9000001-device: live lab run (pid 9000001)",
			},
		},
		{
			name: "crashed lab run (a matrix cell's): its chain and namespaces removed",
			host: fakeHost{
				chains: map[string][]string{"cd-l9000002x3-bridge": {"iptables CLOSEDUEL-7", "ip6tables CLOSEDUEL-7"}},
				names:  lab3("l9000002x3"),
			},
			want: []string{
				"remove chain iptables CLOSEDUEL-7 in netns cd-l9000002x3-bridge: " + crashed,
				"remove chain ip6tables CLOSEDUEL-7 in netns cd-l9000002x3-bridge: " + crashed,
				"remove namespace cd-l9000002x3-bridge: its lab run (pid 9000002) is gone",
				"remove namespace cd-l9000002x3-client: its lab run (pid 9000002) is gone",
				"remove namespace cd-l9000002x3-device: its lab run (pid 9000002) is gone",
			},
		},
		{
			name: "crashed run --netns cd-demo-bridge: the chain goes, the namespace of unknown owner stays",
			host: fakeHost{
				chains: map[string][]string{"cd-demo-bridge": {"iptables CLOSEDUEL-7"}},
				names:  lab3("demo"),
			},
			want: []string{
				"remove chain iptables CLOSEDUEL-7 in netns cd-demo-bridge: " + crashed,
				"keep namespace cd-demo-bridge: owner unknown (not a lab run's nor a lab up bench's; no queue bound, no process inside): --all removes it",
				"keep namespace cd-demo-client: owner unknown (not a lab run's nor a lab up bench's; no queue bound, no process inside): --all removes it",
				"keep namespace cd-demo-device: owner unknown (not a lab run's nor a lab up bench's; no queue bound, no process inside): --all removes it",
			},
		},
		{
			name: "--all and a live run in a bench of unknown owner (lab --name): the whole bench kept",
			host: fakeHost{
				chains: map[string][]string{"cd-demo-bridge": {"iptables CLOSEDUEL-7"}},
				queues: map[string][]runstate.Queue{"cd-demo-bridge": bound(7, livePid)},
				names:  append(lab3("demo"), "cd-other-client"),
			},
			scope: cleanupScope{all: true},
			want: []string{
				"keep chain iptables CLOSEDUEL-7 in netns cd-demo-bridge: " + live,
				"keep namespace cd-demo-bridge: live run inside: queue 7 is bound by pid 9000001",
				"keep namespace cd-demo-client: a live run's bench: cd-demo-bridge has queue 7 bound by pid 9000001",
				"keep namespace cd-demo-device: a live run's bench: cd-demo-bridge has queue 7 bound by pid 9000001",
				"remove namespace cd-other-client: owner unknown, and --all",
			},
		},
		{
			name: "a live run in a bench of unknown owner, without --all: its other namespaces said to be its",
			host: fakeHost{
				queues: map[string][]runstate.Queue{"cd-demo-bridge": bound(7, livePid)},
				names:  lab3("demo"),
			},
			want: []string{
				"keep namespace cd-demo-bridge: live run inside: queue 7 is bound by pid 9000001",
				"keep namespace cd-demo-client: a live run's bench: cd-demo-bridge has queue 7 bound by pid 9000001",
				"keep namespace cd-demo-device: a live run's bench: cd-demo-bridge has queue 7 bound by pid 9000001",
			},
		},
		{
			name: "--all and a process inside a bench of unknown owner (a test's server): that bench kept",
			host: fakeHost{
				names:  append(lab3("demo"), "cd-other-client"),
				inside: map[string][]int{"cd-demo-device": {livePid}},
			},
			scope: cleanupScope{all: true},
			want: []string{
				"keep namespace cd-demo-bridge: a live run's bench: cd-demo-device has pid 9000001 inside",
				"keep namespace cd-demo-client: a live run's bench: cd-demo-device has pid 9000001 inside",
				"keep namespace cd-demo-device: in use: pid 9000001 is inside",
				"remove namespace cd-other-client: owner unknown, and --all",
			},
		},
		{
			name: "queues unreadable: kept",
			host: fakeHost{
				chains: map[string][]string{"cd-l9000002-bridge": {"iptables CLOSEDUEL-7"}},
				qerr:   map[string]error{"cd-l9000002-bridge": errors.New("setns: operation not permitted")},
				names:  []string{"cd-l9000002-bridge"},
			},
			scope: cleanupScope{all: true},
			want: []string{
				"keep namespace cd-l9000002-bridge: its bound queues cannot be read (setns: operation not permitted): kept",
			},
		},
		{
			name: "lab up benches, live and dead, and control sockets",
			host: fakeHost{
				names:   append(lab3("up1"), lab3("up2")...),
				alive:   map[int]bool{livePid: true},
				answers: map[string]bool{"queue-7.sock": true},
			},
			files: map[string]string{"lab-up1.pid": "9000001\n", "lab-up2.pid": "9000002\n", "lab-up3.pid": "9000002\n",
				"queue-7.sock": "", "queue-9.sock": ""},
			want: []string{
				"keep control socket queue-7.sock: live run: it answers",
				"remove control socket queue-9.sock: nobody answers on it: a crashed run's",
				"keep namespace cd-up1-bridge: lab up bench up1, its device server (pid 9000001) alive: closeduel lab down --name up1 removes it",
				"keep namespace cd-up1-client: lab up bench up1, its device server (pid 9000001) alive: closeduel lab down --name up1 removes it",
				"keep namespace cd-up1-device: lab up bench up1, its device server (pid 9000001) alive: closeduel lab down --name up1 removes it",
				"remove namespace cd-up2-bridge: lab up bench up2: its device server (pid 9000002) is gone",
				"remove namespace cd-up2-client: lab up bench up2: its device server (pid 9000002) is gone",
				"remove namespace cd-up2-device: lab up bench up2: its device server (pid 9000002) is gone",
				"remove pid file lab-up3.pid: its bench's namespaces and device server are gone",
			},
			alsoGone: []string{"pid file lab-up2.pid"},
		},
		{
			name: "--name: that bench's namespaces only",
			host: fakeHost{
				chains: map[string][]string{"": {"iptables CLOSEDUEL-9"}, "cd-l9000002-bridge": {"iptables CLOSEDUEL-7"}},
				names:  append(lab3("l9000002"), lab3("l90000021")...),
			},
			scope: cleanupScope{name: "l9000002"},
			files: map[string]string{"queue-9.sock": "", "lab-up3.pid": "9000002\n"},
			want: []string{
				"remove chain iptables CLOSEDUEL-9: " + crashed,
				"remove control socket queue-9.sock: nobody answers on it: a crashed run's",
				"remove chain iptables CLOSEDUEL-7 in netns cd-l9000002-bridge: " + crashed,
				"remove namespace cd-l9000002-bridge: its lab run (pid 9000002) is gone",
				"remove namespace cd-l9000002-client: its lab run (pid 9000002) is gone",
				"remove namespace cd-l9000002-device: its lab run (pid 9000002) is gone",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, text := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			tc.scope.stateDir = dir
			h := tc.host
			items, err := cleanupPlan(context.Background(), &h, tc.scope)
			if err != nil {
				t.Fatal(err)
			}
			var got, wantRemoved []string
			for _, it := range items {
				verb := "remove"
				if it.keep {
					verb = "keep"
				} else {
					wantRemoved = append(wantRemoved, strings.ReplaceAll(it.what, dir+"/", ""))
				}
				got = append(got, verb+" "+strings.ReplaceAll(it.what, dir+"/", "")+": "+it.why)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("decisions (-want +got):\n%s", diff)
			}
			// The dry run removes nothing; the real one what it said.
			var dry, real bytes.Buffer
			if err := carryOut(items, true, &dry); err != nil || len(h.removed) != 0 {
				t.Fatalf("dry run: %v, removed %q", err, h.removed)
			}
			if err := carryOut(items, false, &real); err != nil {
				t.Fatal(err)
			}
			for name := range tc.files {
				if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
					h.removed = append(h.removed, map[bool]string{true: "control socket ", false: "pid file "}[strings.HasSuffix(name, ".sock")]+name)
				}
			}
			wantRemoved = append(wantRemoved, tc.alsoGone...)
			sort.Strings(wantRemoved)
			sort.Strings(h.removed)
			if diff := cmp.Diff(wantRemoved, h.removed); diff != "" {
				t.Errorf("removed (-dry run said +done):\n%s", diff)
			}
			if len(items) > 0 && !strings.Contains(dry.String(), fmt.Sprintf("would remove %d, would keep %d (", len(wantRemoved)-len(tc.alsoGone), len(items)-len(wantRemoved)+len(tc.alsoGone))) {
				t.Errorf("dry run does not count what it would remove and keep:\n%s", dry.String())
			}
			if want := strings.NewReplacer("would keep", "kept", "would remove", "removed").Replace(dry.String()); real.String() != want {
				t.Errorf("cleanup said:\n%s\nits dry run:\n%s", real.String(), dry.String())
			}
		})
	}
}
