package main

import (
	"bytes"
	"context"
	"encoding/json"
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
	"github.com/closeduel/closeduel/internal/benchtest"
	"github.com/closeduel/closeduel/internal/roottest"
	"github.com/closeduel/closeduel/netns"
	"github.com/closeduel/closeduel/runstate"
)

// serviceRules is the rule file the service runs in TestSystemdService:
// a SYN to port 81 is held 30 s, so the stop finds a packet held.
const serviceRules = `experiment: service-check
about: Hold each SYN to port 81 for 30 s; everything else on ports 80 and 81 passes.
hosts: { client: 192.168.100.1, device: 192.168.100.99 }
ports: [80, 81]
rules:
  - { name: hold-syn-81, when: { ports: [81], has: [SYN] }, do: { delay: 30s } }
`

// container is a systemd booted as PID 1 by systemd-nspawn on an overlay
// of this machine's root, in the network namespace of a bench's bridge.
type container struct {
	root string // the overlay, as this process sees it
	init int    // the container's PID 1, as this process sees it
}

// bootContainer boots /lib/systemd/systemd in a container whose root is
// an overlay of / (writes go to a tmpfs) and whose network is namespace
// ns, once prepare has written its files into that root. It waits until
// systemd has reached basic.target; at the end of the test the
// container is powered off and its mounts removed.
func bootContainer(t *testing.T, ns string, prepare func(root string)) *container {
	t.Helper()
	dir := t.TempDir()
	rw, root := filepath.Join(dir, "rw"), filepath.Join(dir, "root")
	for _, d := range []string{rw, root} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mount("tmpfs", rw, "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(rw, syscall.MNT_DETACH) })
	for _, d := range []string{"upper", "work"} {
		os.Mkdir(filepath.Join(rw, d), 0o755)
	}
	opts := "lowerdir=/,upperdir=" + filepath.Join(rw, "upper") + ",workdir=" + filepath.Join(rw, "work")
	if err := syscall.Mount("overlay", root, "overlay", 0, opts); err != nil {
		t.Fatalf("mount overlay of /: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(root, syscall.MNT_DETACH) })
	prepare(root)

	// No systemd runs on the host: --register=no and --keep-unit keep
	// nspawn from asking the host's (absent) bus for a machine and a scope.
	// The container gets the bridge's namespace, and CAP_NET_ADMIN in its
	// bounding set, which nspawn grants on its own only with
	// --private-network.
	cmd := exec.Command("systemd-nspawn", "--quiet", "--directory="+root, "--machine=closeduel-test",
		"--register=no", "--keep-unit", "--network-namespace-path=/run/netns/"+ns,
		"--capability=CAP_NET_ADMIN", "--console=pipe", "--boot")
	var out benchtest.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	began := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &container{root: root}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		// SIGTERM to nspawn powers the container off (systemd stops
		// every unit, closeduel included).
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("the container did not power off within 30 s:\n%s", out.String())
			cmd.Process.Kill()
			<-done
			if c.init != 0 {
				syscall.Kill(c.init, syscall.SIGKILL) // ends its pid namespace
			}
		}
	})

	deadline := time.Now().Add(60 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("systemd in the container did not reach basic.target within 60 s:\n%s", out.String())
		}
		select {
		case <-done:
			t.Fatalf("systemd-nspawn exited: %v\n%s", cmd.ProcessState, out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if c.init == 0 {
			c.init = childNamed(cmd.Process.Pid, "systemd")
			continue
		}
		// basic.target: what this machine enables beyond it (a database,
		// say) may still be starting, or fail, without concerning the test.
		if state, _ := c.exec("systemctl", "is-active", "basic.target"); state == "active" {
			state, _ = c.exec("systemctl", "is-system-running")
			t.Logf("systemd in the container reached basic.target %v after the boot began (system %s)", time.Since(began).Round(time.Millisecond), state)
			return c
		}
	}
}

// childNamed returns the pid of a child of parent whose command is comm,
// or 0.
func childNamed(parent int, comm string) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", parent, parent))
	for _, f := range strings.Fields(string(b)) {
		var pid int
		fmt.Sscan(f, &pid)
		if c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(c)) == comm {
			return pid
		}
	}
	return 0
}

// exec runs argv inside the container (all its namespaces) and returns
// its trimmed combined output.
func (c *container) exec(argv ...string) (string, error) {
	out, err := exec.Command("nsenter", append([]string{"--target", fmt.Sprint(c.init), "--all"}, argv...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// must runs argv in the container and fails the test if it fails.
func (c *container) must(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := c.exec(argv...)
	if err != nil {
		t.Fatalf("in the container, %s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return out
}

// show returns one property of a unit (systemctl show -p).
func (c *container) show(t *testing.T, unit, prop string) string {
	t.Helper()
	return c.must(t, "systemctl", "show", "--property="+prop, "--value", unit)
}

// waitFor polls cond every 50 ms for up to d, and fails the test with what
// and the unit's journal if it never holds.
func (c *container) waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			journal, _ := c.exec("journalctl", "--unit=closeduel", "--no-pager", "--lines=40")
			t.Fatalf("%s: not within %v; the unit's journal:\n%s", what, d, journal)
		}
	}
}

// TestSystemdService runs packaging/closeduel.service under a real
// systemd: systemd-nspawn boots this machine's systemd as PID 1 in a
// container that shares the bench bridge's network namespace, with the
// unit, the environment file and the binary installed as docs/deploy.md
// says. systemctl start brings the run up (chain, queue bound by the main
// process, holding CAP_NET_ADMIN and CAP_NET_RAW only), traffic between
// the bench's hosts gets verdicts in /var/log/closeduel, closeduel ctl
// works on /run/closeduel, a kill -9 of the main process is restarted by
// systemd (Restart=on-failure) into a clean run, and systemctl stop
// removes the chain and lets a held SYN go.
//
// The unit is installed as shipped. Its BindsTo= and After= on
// sys-subsystem-net-devices-br0.device need device units, which systemd
// has only where /sys is writable and udev runs; in the container
// startUdev gives it both. The end of the test checks them: deleting br0
// stops the service, and a start waits until br0 is back.
func TestSystemdService(t *testing.T) {
	roottest.Require(t)
	for _, tool := range []string{"systemd-nspawn", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is needed (make deps-test installs systemd-container and util-linux)", tool)
			}
			t.Skipf("%s not installed (Debian packages systemd-container, util-linux)", tool)
		}
	}
	if _, err := os.Stat("/lib/systemd/systemd"); err != nil {
		t.Skipf("no systemd to boot: %v", err)
	}
	if _, err := os.Stat("/lib/systemd/systemd-udevd"); err != nil {
		if _, err := os.Stat(udevDeb); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("no udev for the container: %v (make udev-deb fetches it)", err)
			}
			t.Skipf("no udev for the container: %v (run make udev-deb)", err)
		}
	}
	ctx := context.Background()
	bin := buildBinary(t)
	topo := newBench(t, "sd")
	serveTCP(t, topo.Device, hostB+":80")

	unit, err := os.ReadFile("../../packaging/closeduel.service")
	if err != nil {
		t.Fatal(err)
	}
	env, err := os.ReadFile("../../packaging/closeduel.env")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(env), "\nCLOSEDUEL_RULES=/etc/closeduel/rules.yaml\n") {
		t.Fatal("the environment file no longer names /etc/closeduel/rules.yaml")
	}
	c := bootContainer(t, topo.Bridge, func(root string) {
		for _, f := range []struct {
			path string
			mode os.FileMode
			data []byte
		}{
			{"etc/systemd/system/closeduel.service", 0o644, unit},
			{"etc/closeduel/closeduel.env", 0o644, env},
			{"etc/closeduel/rules.yaml", 0o644, []byte(serviceRules)},
		} {
			p := filepath.Join(root, f.path)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, f.data, f.mode); err != nil {
				t.Fatal(err)
			}
		}
		if out, err := exec.Command("install", "-m", "0755", bin, filepath.Join(root, "usr/local/bin/closeduel")).CombinedOutput(); err != nil {
			t.Fatalf("install the binary: %v %s", err, out)
		}
		installUdev(t, root)
	})
	c.startUdev(t, "br0")
	logDir := filepath.Join(c.root, "var/log/closeduel")

	// up waits until the unit's main process holds queue 7 and its chain
	// is in, and returns that process as the host sees it.
	up := func(what string) int {
		t.Helper()
		var q runstate.Queue
		c.waitFor(t, 10*time.Second, what+": queue 7 bound by the main process and chain CLOSEDUEL-7 in", func() bool {
			var ok bool
			q, ok = runstate.QueueUser(topo.Bridge, 7)
			chains, _ := bridgehook.Chains(ctx, topo.Bridge)
			return ok && len(chains) == 1 && chains[0].Name == "CLOSEDUEL-7" &&
				c.show(t, "closeduel", "ActiveState") == "active" && nsPID(q.PID) == c.show(t, "closeduel", "MainPID")
		})
		return q.PID
	}
	requests := func(n int) {
		t.Helper()
		if ok := httpRequests(t, topo.Client, hostB+":80", n); ok != n {
			t.Fatalf("A>B through the service: %d of %d requests ok", ok, n)
		}
	}

	// [Install]: enable links it into multi-user.target.
	c.must(t, "systemctl", "enable", "closeduel")
	if st, _ := c.exec("systemctl", "is-enabled", "closeduel"); st != "enabled" {
		t.Errorf("after systemctl enable: %s", st)
	}
	if _, err := os.Lstat(filepath.Join(c.root, "etc/systemd/system/multi-user.target.wants/closeduel.service")); err != nil {
		t.Errorf("systemctl enable: %v", err)
	}

	start := time.Now()
	c.must(t, "systemctl", "start", "closeduel")
	pid := up("systemctl start")
	t.Logf("systemctl start: inline %v after the start", time.Since(start).Round(time.Millisecond))

	// The hardening leaves the run the two capabilities, no new privileges,
	// a seccomp filter.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{`CapEff:\s+0000000000003000`, `CapBnd:\s+0000000000003000`, `CapAmb:\s+0000000000003000`, `NoNewPrivs:\s+1`, `Seccomp:\s+2`} {
		if !regexp.MustCompile(`(?m)^` + re + `$`).Match(status) {
			t.Errorf("the service's process does not have %s:\n%s", re, status)
		}
	}

	requests(3)
	// The log is flushed every 100 ms: what a kill -9 may lose.
	var firstRun int
	c.waitFor(t, 5*time.Second, "the first run's verdicts in /var/log/closeduel/verdicts.jsonl", func() bool {
		firstRun = len(verdictLines(t, filepath.Join(logDir, "verdicts.jsonl")))
		return firstRun >= 3*8
	})

	// closeduel ctl, run in the container, finds the socket in
	// /run/closeduel by default.
	if st := c.must(t, "closeduel", "ctl", "status"); !strings.Contains(st, "experiment service-check") || !strings.Contains(st, "on  hold-syn-81") {
		t.Fatalf("ctl status:\n%s", st)
	}
	c.must(t, "closeduel", "ctl", "mitigation", "timewait-guard", "on")
	if st := c.must(t, "closeduel", "ctl", "status"); !strings.Contains(st, "on  mitigation timewait-guard") {
		t.Fatalf("ctl status after mitigation on:\n%s", st)
	}
	c.must(t, "closeduel", "ctl", "mitigation", "timewait-guard", "off")
	if st := c.must(t, "closeduel", "ctl", "status"); !strings.Contains(st, "off mitigation timewait-guard") {
		t.Fatalf("ctl status after mitigation off:\n%s", st)
	}

	// kill -9 of the main process: systemd restarts it (Restart=on-failure,
	// RestartSec=2s), ExecStopPost's cleanup and the new start leave one
	// chain, and the new run keeps the old logs under their time.
	oldMain := c.show(t, "closeduel", "MainPID")
	c.must(t, "kill", "-9", oldMain)
	start = time.Now()
	c.waitFor(t, 15*time.Second, "restart after kill -9", func() bool {
		return c.show(t, "closeduel", "NRestarts") == "1" && c.show(t, "closeduel", "ActiveState") == "active"
	})
	pid = up("after kill -9")
	t.Logf("kill -9 of pid %s (in the container): restarted as pid %s, inline %v later", oldMain, nsPID(pid), time.Since(start).Round(time.Millisecond))
	if kept, _ := filepath.Glob(filepath.Join(logDir, "verdicts.jsonl.*")); len(kept) != 1 {
		t.Errorf("after the restart, earlier verdict logs %q: want the first run's, renamed", kept)
	} else if n := len(verdictLines(t, kept[0])); n != firstRun {
		t.Errorf("the first run's log %s has %d verdicts, %d before the kill", kept[0], n, firstRun)
	}
	requests(2)

	// A SYN held when the service stops is delivered: the device has
	// nothing on port 81 and refuses it.
	refused := make(chan error, 1)
	go func() {
		refused <- netns.Do(topo.Client, func() error {
			conn, err := net.DialTimeout("tcp4", hostB+":81", 20*time.Second)
			if err == nil {
				conn.Close()
			}
			return err
		})
	}()
	c.waitFor(t, 5*time.Second, "the SYN to port 81 held", func() bool {
		st, _ := c.exec("closeduel", "ctl", "status")
		return strings.Contains(st, "held now 1,")
	})
	start = time.Now()
	c.must(t, "systemctl", "stop", "closeduel")
	t.Logf("systemctl stop returned after %v", time.Since(start).Round(time.Millisecond))
	select {
	case err := <-refused:
		if err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("the held SYN: %v; want connection refused", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the SYN held at the stop was not delivered")
	}
	if st := c.show(t, "closeduel", "ActiveState") + " " + c.show(t, "closeduel", "Result"); st != "inactive success" {
		t.Errorf("after systemctl stop: %s, want inactive success", st)
	}
	if chains, err := bridgehook.Chains(ctx, topo.Bridge); err != nil || len(chains) != 0 {
		t.Errorf("after systemctl stop: chains %v (%v)", chains, err)
	}
	if q, ok := runstate.QueueUser(topo.Bridge, 7); ok {
		t.Errorf("after systemctl stop: queue 7 still bound by %s", q.Describe())
	}
	journal := c.must(t, "journalctl", "--unit=closeduel", "--no-pager", "--output=short")
	t.Logf("the unit's journal up to the stop:\n%s", journal)
	if !strings.Contains(journal, "summary after") {
		t.Errorf("no summary in the journal:\n%s", journal)
	}

	// The second run's log: the two requests and the held SYN, released.
	byRule := map[string]int{}
	for _, rec := range verdictLines(t, filepath.Join(logDir, "verdicts.jsonl")) {
		r, _ := rec["rule"].(string)
		byRule[r]++
		if rec["src"] != hostA && rec["src"] != hostB {
			t.Errorf("verdict for traffic outside the experiment: %v", rec)
		}
	}
	if byRule["hold-syn-81"] != 1 || byRule[""] < 2*8 {
		t.Errorf("the second run's verdicts by rule %v: want one hold-syn-81 and at least 16 others", byRule)
	}

	// BindsTo= on the bridge's device: the service stops when br0 goes
	// away, and a start waits for it to come back (udev sees the kernel's
	// remove and add events in the container).
	c.must(t, "systemctl", "start", "closeduel")
	up("start again")
	if err := netns.Run(ctx, topo.Bridge, "ip", "link", "del", "br0"); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, 10*time.Second, "the service stopped after br0 was deleted", func() bool {
		chains, _ := bridgehook.Chains(ctx, topo.Bridge)
		return c.show(t, "closeduel", "ActiveState") == "inactive" && len(chains) == 0
	})
	c.must(t, "systemctl", "start", "--no-block", "closeduel")
	if jobs := c.must(t, "systemctl", "list-jobs", "--no-legend"); !regexp.MustCompile(`closeduel\.service\s+start\s+waiting`).MatchString(jobs) {
		t.Errorf("without br0, the start of closeduel does not wait:\n%s", jobs)
	}
	if st := c.show(t, "closeduel", "ActiveState"); st != "inactive" {
		t.Errorf("without br0 the service is %s", st)
	}
	for _, step := range [][]string{{"link", "add", "br0", "type", "bridge"}, {"link", "set", "br0", "up"}} {
		if err := netns.Run(ctx, topo.Bridge, append([]string{"ip"}, step...)...); err != nil {
			t.Fatal(err)
		}
	}
	up("br0 back")
	c.must(t, "systemctl", "stop", "closeduel")
	if chains, err := bridgehook.Chains(ctx, topo.Bridge); err != nil || len(chains) != 0 {
		t.Errorf("after the last stop: chains %v (%v)", chains, err)
	}
}

// udevDeb is where make udev-deb puts Debian's udev package when this
// machine has no udev.
const udevDeb = "/var/cache/closeduel/udev.deb"

// installUdev puts udev into the container's root: from this machine when
// it has it, else unpacked from udevDeb. Two defaults are masked: the
// trigger of every device at boot (only br0 is triggered) and
// 99-default.link, whose MACAddressPolicy would give br0 a new address.
func installUdev(t *testing.T, root string) {
	t.Helper()
	if _, err := os.Stat("/lib/systemd/systemd-udevd"); err != nil {
		// --keep-directory-symlink: /bin and /lib stay links into /usr.
		cmd := exec.Command("sh", "-c", `dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" --keep-directory-symlink`, "sh", udevDeb, root)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("unpack %s: %v\n%s", udevDeb, err, out)
		}
	}
	for _, p := range []string{"etc/systemd/system/systemd-udev-trigger.service", "etc/systemd/network/99-default.link"} {
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		if err := os.Symlink("/dev/null", filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
}

// startUdev gives the container's systemd device units. nspawn, joining a
// network namespace it did not make, mounts /sys read-only and with the
// host's network devices; systemd then supports no device units. So a
// sysfs of the container's own namespace is mounted, writable, over /sys
// (the cgroup mounts moved into it), udevd started, systemd re-executed
// (it decides once whether device units work) and an add event of iface
// triggered; then sys-subsystem-net-devices-IFACE.device is active.
func (c *container) startUdev(t *testing.T, iface string) {
	t.Helper()
	c.must(t, "sh", "-ec", `mount --make-rprivate /
mkdir -p /run/cd-sys
mount -t sysfs sysfs /run/cd-sys
mount --rbind /sys/fs/cgroup /run/cd-sys/fs/cgroup
mount --move /run/cd-sys /sys`)
	c.must(t, "systemctl", "start", "systemd-udevd")
	c.must(t, "systemctl", "daemon-reexec")
	c.must(t, "udevadm", "trigger", "--action=add", "--settle", "/sys/class/net/"+iface)
	dev := "sys-subsystem-net-devices-" + iface + ".device"
	c.waitFor(t, 10*time.Second, dev+" active", func() bool { return c.show(t, dev, "ActiveState") == "active" })
}

// verdictLines returns the verdict records of a JSON Lines verdict log.
func verdictLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A line still being written (no newline yet) is not read.
	data = data[:bytes.LastIndexByte(data, '\n')+1]
	var out []map[string]any
	for _, line := range strings.Fields(string(data)) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("%s: line %q: %v", path, line, err)
		}
		if rec["kind"] == "verdict" {
			out = append(out, rec)
		}
	}
	return out
}

// nsPID returns the pid that process pid has in its own (innermost) pid
// namespace, from the NSpid line of its status ("" when it cannot be read).
func nsPID(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ""
	}
	m := regexp.MustCompile(`(?m)^NSpid:\s+(.*)$`).FindSubmatch(b)
	if m == nil {
		return ""
	}
	f := strings.Fields(string(m[1]))
	return f[len(f)-1]
}
