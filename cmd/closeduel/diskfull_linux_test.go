package main

import (
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/closeduel/closeduel/internal/benchtest"
	"github.com/closeduel/closeduel/internal/roottest"
)

// TestRunOnAFullDiskSaysSoAndCounts runs closeduel with its log and
// capture on a 512 KiB tmpfs and sends traffic until it fills: the run
// must warn while it happens, ctl status must show the failed records,
// traffic must keep flowing, and the summary must count them.
func TestRunOnAFullDiskSaysSoAndCounts(t *testing.T) {
	roottest.Require(t)
	bin := buildBinary(t)
	topo := newBench(t, "cf")
	dir := t.TempDir()
	logDir := filepath.Join(dir, "small")
	os.Mkdir(logDir, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=512k", "closeduel-test", logDir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", logDir).Run() })
	benchtest.Serve(t, topo.Device, "192.168.100.99:80", func(c net.Conn) { io.Copy(io.Discard, c) })
	sock := filepath.Join(dir, "ctl.sock")
	run := startRun(t, bin, topo.Bridge, sock, "--log", filepath.Join(logDir, "v.jsonl"), "--pcap", filepath.Join(logDir, "c.pcapng"))

	// One connection sending small segments: each is a record in both
	// files, so the 512 KiB fill within seconds.
	out := run.out
	c, err := benchtest.Dial(topo.Client, "192.168.100.99:80", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetNoDelay(true)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "verdict log is losing records") {
		if time.Now().After(deadline) {
			t.Fatalf("no warning while the disk filled:\n%s", out.String())
		}
		c.SetWriteDeadline(time.Now().Add(3 * time.Second))
		for range 50 {
			if _, err := c.Write([]byte("0123456789")); err != nil {
				t.Fatalf("traffic stopped flowing: %v", err)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	ctl := exec.Command(bin, "ctl", "status")
	ctl.Env = append(os.Environ(), "CLOSEDUEL_CONTROL="+sock)
	status, err := ctl.CombinedOutput()
	if err != nil {
		t.Fatalf("ctl status: %v\n%s", err, status)
	}
	m := regexp.MustCompile(`log records written \d+, lost \d+ \(ring full\), failed (\d+) \(write errors\); last error: .*no space left`).FindSubmatch(status)
	if m == nil || string(m[1]) == "0" {
		t.Fatalf("ctl status does not show the failed records:\n%s", status)
	}
	run.stop(t)
	sum := regexp.MustCompile(`log records +written (\d+), lost (\d+) \(ring full\), failed (\d+) \(write errors\)`).FindStringSubmatch(out.String())
	if sum == nil {
		t.Fatalf("no log line in the summary:\n%s", out.String())
	}
	failed, _ := strconv.Atoi(sum[3])
	if failed == 0 {
		t.Errorf("summary counts no failed records:\n%s", out.String())
	}
	t.Logf("summary: written %s, lost %s, failed %s", sum[1], sum[2], sum[3])
}
