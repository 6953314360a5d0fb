package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/closeduel/closeduel/bridgehook"
	"github.com/closeduel/closeduel/internal/benchtest"
	"github.com/closeduel/closeduel/internal/roottest"
	"github.com/closeduel/closeduel/netns"
	"github.com/closeduel/closeduel/topology"
)

// labRun is a closeduel lab started in the background.
type labRun struct {
	cmd  *exec.Cmd
	out  *benchtest.Buffer
	done chan struct{}
	name string // its namespaces' name part, l<pid>
}

// startLab starts closeduel lab on the Linux device (quick to start) with
// a short workload and the given quiet, and waits until its engine is
// inline: its chain is in its bridge namespace.
func startLab(t *testing.T, bin string, quiet time.Duration) *labRun {
	t.Helper()
	cmd := exec.Command(bin, "lab", "--device", "linux", "--schedule", "1x100ms", "--quiet", quiet.String(),
		"--runs", t.TempDir(), "--experiment", "cleanup-test")
	r := &labRun{cmd: cmd, out: &benchtest.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = r.out, r.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.name = fmt.Sprintf("l%d", cmd.Process.Pid)
	// done is closed when it has exited, before it is reaped (cmd.Wait):
	// an unreaped dead lab is one cleanup must see as gone while other
	// labs' sweeps (kill(pid, 0)) leave its namespaces alone.
	go func() {
		var info unix.Siginfo
		for unix.Waitid(unix.P_PID, cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil) == unix.EINTR {
		}
		close(r.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-r.done
		cmd.Wait()
		for _, n := range lab3(r.name) {
			netns.Delete(n)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for len(labChains(t, r.name)) == 0 {
		select {
		case <-r.done:
			t.Fatalf("lab ended before it was inline:\n%s", r.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("lab not inline within 15 s:\n%s", r.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return r
}

// labChains lists the chains in lab run name's bridge namespace.
func labChains(t *testing.T, name string) []string {
	t.Helper()
	ns := topology.NamePrefix + name + "-bridge"
	if !netns.Exists(ns) {
		return nil
	}
	chains, err := bridgehook.Chains(context.Background(), ns)
	if err != nil {
		return nil // being built or removed
	}
	var out []string
	for _, c := range chains {
		out = append(out, c.Bin+" "+c.Name)
	}
	return out
}

// TestCleanupNeverTouchesALiveLabRunAndRemovesACrashedOnes runs two real
// lab runs, kills one with SIGKILL, and runs cleanup (with and without
// --dry-run and --all) on both: the live run's namespaces and chain are
// kept, said to be a live run's, and the run ends normally with its
// report; the crashed run's chain (found inside its namespace) and
// namespaces are removed, and the dry run said so first.
func TestCleanupNeverTouchesALiveLabRunAndRemovesACrashedOnes(t *testing.T) {
	roottest.Require(t)
	bin := buildBinary(t)
	// The run to crash first (its quiet outlasts the test), then the live
	// one, whose 10 s of quiet start once it is inline.
	crashed := startLab(t, bin, time.Minute)
	live := startLab(t, bin, 10*time.Second)
	// Killed and not reaped: dead, and kept from other labs' sweeps.
	crashed.cmd.Process.Signal(syscall.SIGKILL)
	<-crashed.done
	started := time.Now()

	cleanup := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"cleanup"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("cleanup %q: %v\n%s", args, err, out)
		}
		return string(out)
	}
	about := func(out, name string) []string { return lines(out, topology.NamePrefix+name+"-") }
	// verbs turns "would remove"/"would keep" lines into what cleanup
	// without --dry-run says.
	verbs := func(dry bool, ls []string) []string {
		var out []string
		for _, l := range ls {
			if dry {
				l = "would " + strings.NewReplacer("removed ", "remove ", "kept ", "keep ").Replace(l)
			}
			out = append(out, l)
		}
		return out
	}

	// The crashed run: what it left.
	for _, n := range lab3(crashed.name) {
		if !netns.Exists(n) {
			t.Fatalf("the crashed lab run left no namespace %s ", n)
		}
	}
	if got := labChains(t, crashed.name); strings.Join(got, ", ") != "iptables CLOSEDUEL-7" {
		t.Fatalf("the crashed lab run left chains %q, want iptables CLOSEDUEL-7 (the lab's hosts are IPv4)", got)
	}
	crashedPid := crashed.cmd.Process.Pid
	wantCrashed := []string{
		fmt.Sprintf("removed chain iptables CLOSEDUEL-7 in netns cd-%s-bridge: no process has its queue bound: a crashed run's", crashed.name),
		fmt.Sprintf("removed namespace cd-%s-bridge: its lab run (pid %d) is gone", crashed.name, crashedPid),
		fmt.Sprintf("removed namespace cd-%s-client: its lab run (pid %d) is gone", crashed.name, crashedPid),
		fmt.Sprintf("removed namespace cd-%s-device: its lab run (pid %d) is gone", crashed.name, crashedPid),
	}
	// The live run, with the pid and command line that hold its queue.
	livePid := live.cmd.Process.Pid
	wantLive := []string{
		fmt.Sprintf("kept chain iptables CLOSEDUEL-7 in netns cd-%s-bridge: live run: queue 7 is bound by pid %d (", live.name, livePid),
		fmt.Sprintf("kept namespace cd-%s-bridge: live run inside: queue 7 is bound by pid %d (", live.name, livePid),
		fmt.Sprintf("kept namespace cd-%s-client: live lab run (pid %d)", live.name, livePid),
		fmt.Sprintf("kept namespace cd-%s-device: live lab run (pid %d)", live.name, livePid),
	}
	checkLive := func(args []string, out string) {
		t.Helper()
		got := about(out, live.name)
		want := verbs(args[0] == "--dry-run", wantLive)
		if len(got) != len(want) {
			t.Fatalf("cleanup %q says of the live lab run:\n%s\nwant %d lines", args, strings.Join(got, "\n"), len(want))
		}
		for i, w := range want {
			if !strings.HasPrefix(got[i], w) {
				t.Errorf("cleanup %q: %q, want %q...", args, got[i], w)
			}
		}
	}
	// The unscoped dry run judges both (it removes nothing, so other
	// tests' benches are safe); the real cleanups are scoped with --name.
	dry := cleanup("--dry-run")
	if got, want := about(dry, crashed.name), verbs(true, wantCrashed); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("cleanup --dry-run says of the crashed lab run:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	checkLive([]string{"--dry-run"}, dry)
	if got := about(cleanup("--name", crashed.name), crashed.name); strings.Join(got, "\n") != strings.Join(wantCrashed, "\n") {
		t.Errorf("cleanup says of the crashed lab run:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantCrashed, "\n"))
	}
	if left, _ := netns.List(topology.NamePrefix + crashed.name + "-"); len(left) != 0 {
		t.Errorf("the crashed lab run's namespaces left after cleanup: %q", left)
	}
	for _, args := range [][]string{{"--dry-run", "--all", "--name", live.name}, {"--name", live.name}, {"--all", "--name", live.name}} {
		checkLive(args, cleanup(args...))
	}
	t.Logf("5 cleanup commands took %v", time.Since(started).Round(time.Millisecond))

	// The live run still has all it had, and ends by itself with its report.
	select {
	case <-live.done:
		t.Fatalf("the live lab run ended while cleanup ran (its quiet too short for this host?):\n%s", live.out.String())
	default:
	}
	if left, _ := netns.List(topology.NamePrefix + live.name + "-"); len(left) != 3 {
		t.Errorf("the live lab run's namespaces after cleanup: %q, want all 3", left)
	}
	if got := labChains(t, live.name); strings.Join(got, ", ") != "iptables CLOSEDUEL-7" {
		t.Errorf("the live lab run's chains after cleanup: %q", got)
	}
	select {
	case <-live.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the live lab run did not end:\n%s", live.out.String())
	}
	live.cmd.Wait()
	if code := live.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("the live lab run exited %d:\n%s", code, live.out.String())
	}
	out := live.out.String()
	for _, want := range []string{"DUELS (", "requests                           2 ok, 0 failed", "middlebox                          observe only; verdicts by action: pass "} {
		if !strings.Contains(out, want) {
			t.Errorf("the live lab run's report lacks %q:\n%s", want, out)
		}
	}
	if left, _ := netns.List(topology.NamePrefix + live.name + "-"); len(left) != 0 {
		t.Errorf("the live lab run left namespaces %q", left)
	}
	if _, err := os.Stat(filepath.Join(labStateDir, "lab-"+live.name+".pid")); err == nil {
		t.Errorf("a pid file for the lab run")
	}
}

// TestCleanupAllKeepsABenchWithAProcessInside: --all removes closeduel
// namespaces of unknown owner, but not while a process is inside one of
// a bench's namespaces (another test's server, a run's helper); once it
// is gone, --all removes the bench.
func TestCleanupAllKeepsABenchWithAProcessInside(t *testing.T) {
	roottest.Require(t)
	bin := buildBinary(t)
	name := fmt.Sprintf("ci%d", os.Getpid()%100000)
	// Not newBench: cleanup removes this bench's namespaces, so closing
	// it at the end is expected to find them gone.
	topo, err := topology.Build(context.Background(), topology.Config{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { topo.Close() })
	sleep := netns.Command(context.Background(), topo.Device, "sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	cleanup := func(args ...string) []string {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"cleanup", "--all", "--name", name}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("cleanup --all %q: %v\n%s", args, err, out)
		}
		return lines(string(out), "namespace ")
	}
	inside := fmt.Sprintf("pid %d (sleep 60)", sleep.Process.Pid)
	want := []string{
		"kept namespace " + topo.Bridge + ": a live run's bench: " + topo.Device + " has " + inside + " inside",
		"kept namespace " + topo.Client + ": a live run's bench: " + topo.Device + " has " + inside + " inside",
		"kept namespace " + topo.Device + ": in use: " + inside + " is inside",
	}
	if diff := cmp.Diff(want, cleanup()); diff != "" {
		t.Errorf("cleanup --all with a process inside (-want +got):\n%s", diff)
	}
	if left, _ := netns.List(topology.NamePrefix + name + "-"); len(left) != 3 {
		t.Fatalf("namespaces left: %q, want all 3", left)
	}
	sleep.Process.Kill()
	sleep.Wait()
	var gone []string
	for _, n := range []string{topo.Bridge, topo.Client, topo.Device} {
		gone = append(gone, "removed namespace "+n+": owner unknown, and --all")
	}
	if diff := cmp.Diff(gone, cleanup()); diff != "" {
		t.Errorf("cleanup --all once the process is gone (-want +got):\n%s", diff)
	}
	if left, _ := netns.List(topology.NamePrefix + name + "-"); len(left) != 0 {
		t.Errorf("namespaces left: %q", left)
	}
}
