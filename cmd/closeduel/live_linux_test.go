package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/closeduel/closeduel/bridgehook"
	"github.com/closeduel/closeduel/internal/roottest"
	"github.com/closeduel/closeduel/netns"
	"github.com/closeduel/closeduel/runstate"
	"github.com/closeduel/closeduel/topology"
)

// lines returns the lines of out that mention s.
func lines(out, s string) []string {
	var l []string
	for _, x := range strings.Split(out, "\n") {
		if strings.Contains(x, s) {
			l = append(l, x)
		}
	}
	return l
}

// TestCleanupLeavesALiveRunAlone: cleanup used to remove a live run's chain
// silently (the run went on believing it was inline). Now it keeps it and
// says whose it is, and removes a crashed run's chain; --dry-run says
// exactly what the real cleanup then does. The same for the nft tables of
// --vlan-tags, where nft is installed (CI installs it).
func TestCleanupLeavesALiveRunAlone(t *testing.T) {
	roottest.Require(t)
	_, err := exec.LookPath("nft")
	withNft := err == nil
	if !withNft && os.Getenv("CI") == "true" {
		t.Fatal("nft is needed (make deps-test installs it)")
	}
	bin := buildBinary(t)
	ctx := context.Background()
	topo := newBench(t, "cl")
	name := topo.Name
	// Control sockets where cleanup looks: the live run's, and what a
	// crashed run leaves (a socket file nobody listens on).
	liveSock := filepath.Join(labStateDir, "test-"+name+".sock")
	deadSock := filepath.Join(labStateDir, "test-"+name+"-crashed.sock")
	t.Cleanup(func() { os.Remove(liveSock); os.Remove(deadSock) })
	var extra []string
	if withNft {
		extra = append(extra, "--vlan-tags")
	}
	run := startRun(t, bin, topo.Bridge, liveSock, extra...)
	ln, err := net.Listen("unix", deadSock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	// What a crashed run on queue 9 would leave: its chain.
	if err := netns.Run(ctx, topo.Bridge, "iptables", "-w", "-N", "CLOSEDUEL-9"); err != nil {
		t.Fatal(err)
	}
	if withNft {
		if err := netns.Run(ctx, topo.Bridge, "nft", "add", "table", "bridge", "closeduel-9"); err != nil {
			t.Fatal(err)
		}
	}

	// --name: only this test's namespaces are looked into (a real
	// cleanup of every cd-* namespace would judge other tests' benches).
	dry, err := exec.Command(bin, "cleanup", "--netns", topo.Bridge, "--name", name, "--dry-run").CombinedOutput()
	if err != nil {
		t.Fatalf("cleanup --dry-run: %v\n%s", err, dry)
	}
	for _, want := range []string{"would keep control socket " + liveSock + ": live run: it answers",
		"would remove control socket " + deadSock + ": nobody answers on it: a crashed run's"} {
		if !strings.Contains(string(dry), want) {
			t.Errorf("dry run does not say %q:\n%s", want, dry)
		}
	}
	live := regexp.MustCompile(fmt.Sprintf(`would keep chain iptables CLOSEDUEL-7 in netns %s: live run: queue 7 is bound by pid %d \(.*closeduel run`, topo.Bridge, run.Process.Pid))
	if !live.Match(dry) {
		t.Errorf("dry run does not say it keeps the live run's chain:\n%s", dry)
	}
	if want := "would remove chain iptables CLOSEDUEL-9 in netns " + topo.Bridge + ": no process has its queue bound: a crashed run's"; !strings.Contains(string(dry), want) {
		t.Errorf("dry run does not say %q:\n%s", want, dry)
	}
	if withNft {
		for _, want := range []string{
			"would keep nft table bridge closeduel-7 in netns " + topo.Bridge + ": live run: queue 7 is bound by pid",
			"would remove nft table bridge closeduel-9 in netns " + topo.Bridge + ": no process has its queue bound: a crashed run's",
		} {
			if !strings.Contains(string(dry), want) {
				t.Errorf("dry run does not say %q:\n%s", want, dry)
			}
		}
	}
	real, err := exec.Command(bin, "cleanup", "--netns", topo.Bridge, "--name", name).CombinedOutput()
	if err != nil {
		t.Fatalf("cleanup: %v\n%s", err, real)
	}
	// Same verdicts on the chains, sockets and namespaces, in the same words.
	for _, what := range []string{"chain ", "nft table ", "control socket " + filepath.Join(labStateDir, "test-"+name), "namespace "} {
		wantLines := strings.NewReplacer("would keep", "kept", "would remove", "removed").Replace(strings.Join(lines(string(dry), what), "\n"))
		if got := strings.Join(lines(string(real), what), "\n"); got != wantLines || (got == "" && (what != "nft table " || withNft)) {
			t.Errorf("cleanup did not do what --dry-run said:\ndry run:\n%s\ncleanup:\n%s", wantLines, got)
		}
	}
	if _, err := os.Stat(deadSock); err == nil {
		t.Errorf("the crashed run's socket %s is left", deadSock)
	}
	if !runstate.SocketAnswers(liveSock) {
		t.Errorf("the live run's socket %s no longer answers", liveSock)
	}
	chains, err := bridgehook.Chains(ctx, topo.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range chains {
		names = append(names, c.Bin+" "+c.Name)
	}
	want := "iptables CLOSEDUEL-7, ip6tables CLOSEDUEL-7"
	if withNft {
		want += ", nft closeduel-7"
	}
	if got := strings.Join(names, ", "); got != want {
		t.Errorf("chains after cleanup: %s; want the live run's only, %s", got, want)
	}
}

// TestCleanupDryRunMatchesWhatCleanupDoesWithALabUpBench: the dry run
// claimed it would remove a live lab up bench's namespaces, then cleanup
// removed nothing. Now both keep a live bench, and both remove a bench
// whose device server is gone.
func TestCleanupDryRunMatchesWhatCleanupDoesWithALabUpBench(t *testing.T) {
	roottest.Require(t)
	bin := buildBinary(t)
	name := fmt.Sprintf("cu%d", os.Getpid()%100000)
	if out, err := exec.Command(bin, "lab", "up", "--name", name).CombinedOutput(); err != nil {
		t.Fatalf("lab up: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command(bin, "lab", "down", "--name", name).Run() })
	prefix := "namespace " + topology.NamePrefix + name + "-"
	cleanup := func(args ...string) []string {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"cleanup", "--name", name}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("cleanup %q: %v\n%s", args, err, out)
		}
		return lines(string(out), prefix)
	}
	for _, args := range [][]string{{"--dry-run"}, nil} {
		got := cleanup(args...)
		if len(got) != 3 {
			t.Fatalf("cleanup %q says of the bench's namespaces:\n%s", args, strings.Join(got, "\n"))
		}
		for _, l := range got {
			if !strings.Contains(l, "keep") && !strings.Contains(l, "kept") || !strings.Contains(l, "lab up bench "+name+", its device server") {
				t.Errorf("cleanup %q on a live bench: %q", args, l)
			}
		}
	}
	if left, _ := netns.List(topology.NamePrefix + name + "-"); len(left) != 3 {
		t.Fatalf("cleanup removed a live bench's namespaces: left %q", left)
	}
	// The device server dies: the bench is a crashed one's now.
	pid := readPid(pidFile(name))
	syscall.Kill(-pid, syscall.SIGKILL)
	syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 100 && exec.Command("kill", "-0", fmt.Sprint(pid)).Run() == nil; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	dry := cleanup("--dry-run")
	real := cleanup()
	want := strings.ReplaceAll(strings.Join(dry, "\n"), "would remove", "removed")
	if got := strings.Join(real, "\n"); got != want || len(real) != 3 || !strings.Contains(got, "removed") {
		t.Errorf("dry run said:\n%s\ncleanup did:\n%s", strings.Join(dry, "\n"), got)
	}
	if left, _ := netns.List(topology.NamePrefix + name + "-"); len(left) != 0 {
		t.Errorf("namespaces of the crashed bench left: %q", left)
	}
	if _, err := os.Stat(pidFile(name)); err == nil {
		t.Errorf("pid file %s left", pidFile(name))
	}
}

// TestSecondRunOnAQueueInUseSaysWho: the second run used to say it needs
// root or CAP_NET_ADMIN while running as root.
func TestSecondRunOnAQueueInUseSaysWho(t *testing.T) {
	roottest.Require(t)
	bin := buildBinary(t)
	topo := newBench(t, "cq")
	first := startRun(t, bin, topo.Bridge, filepath.Join(t.TempDir(), "ctl.sock"))
	out, err := exec.Command(bin, "run", "--netns", topo.Bridge, "--hook", "none", "--control", "off", "--duration", "1s").CombinedOutput()
	if err == nil {
		t.Fatalf("the second run started:\n%s", out)
	}
	want := regexp.MustCompile(fmt.Sprintf(`run: queue 7 in netns %s is in use by pid %d \(.*closeduel run .*\): stop that run or choose another queue \(--queue\)`, topo.Bridge, first.Process.Pid))
	if !want.Match(out) || strings.Contains(string(out), "CAP_NET_ADMIN") {
		t.Errorf("second run says:\n%s\nwant it to match %s", out, want)
	}
}

// TestRunRefusesToStartWithoutItsCapabilities drops one capability at a
// time from the bounding set (setpriv) and expects run to name it.
func TestRunRefusesToStartWithoutItsCapabilities(t *testing.T) {
	roottest.Require(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	bin := buildBinary(t)
	for _, tc := range []struct{ drop, want string }{
		{"net_admin", "run: missing CAP_NET_ADMIN (binding an NFQUEUE and installing iptables rules): run as root, or give the binary the capabilities (setcap cap_net_admin+ep closeduel)"},
		{"net_raw", "run: missing CAP_NET_RAW (sending injected and duplicated segments (packet sockets))"},
	} {
		t.Run(tc.drop, func(t *testing.T) {
			cmd := exec.Command(setpriv, "--bounding-set=-"+tc.drop, "--inh-caps=-"+tc.drop, bin, "run", "--hook", "none", "--control", "off", "--queue", "4242", "--duration", "1s")
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Errorf("run without %s: %v\n%s\nwant %q", tc.drop, err, out, tc.want)
			}
		})
	}
}

// TestControlSocketIsRootOnly: the control socket and its directory are
// for root alone, and a run listens on nothing else unless asked (no TCP
// or UDP socket in LISTEN or bound).
func TestControlSocketIsRootOnly(t *testing.T) {
	roottest.Require(t)
	bin := buildBinary(t)
	topo := newBench(t, "cs")
	dir := filepath.Join(t.TempDir(), "ctl")
	sock := filepath.Join(dir, "queue.sock")
	run := startRun(t, bin, topo.Bridge, sock)
	if ls := listeners(t, run.Process.Pid); len(ls) != 0 {
		t.Errorf("run listens on %q without being asked", ls)
	}
	for path, want := range map[string]os.FileMode{sock: 0o600, dir: 0o700} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want || st.Sys().(*syscall.Stat_t).Uid != 0 {
			t.Errorf("%s: mode %v uid %d, want %v owned by root", path, st.Mode().Perm(), st.Sys().(*syscall.Stat_t).Uid, want)
		}
	}
}

// listeners returns the TCP sockets in LISTEN and the bound UDP sockets
// that process pid holds, as "tcp 0100007F:1F90" lines.
func listeners(t *testing.T, pid int) []string {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if ino, ok := strings.CutPrefix(l, "socket:["); ok {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	var out []string
	for _, proto := range []string{"tcp", "tcp6", "udp", "udp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, proto))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || !inodes[f[9]] {
				continue
			}
			if strings.HasPrefix(proto, "udp") || f[3] == "0A" {
				out = append(out, proto+" "+f[1])
			}
		}
	}
	return out
}
