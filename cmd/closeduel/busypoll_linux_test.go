package main

import (
	"io"
	"net"
	"path/filepath"
	"regexp"
	"runtime"
	"testing"
	"time"

	"github.com/closeduel/closeduel/internal/benchtest"
	"github.com/closeduel/closeduel/internal/roottest"
)

func TestBusyPollFor(t *testing.T) {
	for _, c := range []struct {
		given bool
		flag  time.Duration
		cpus  int
		want  time.Duration
	}{
		{false, defaultBusyPoll, 2, defaultBusyPoll},
		{false, defaultBusyPoll, 1, 0},
		{true, 50 * time.Microsecond, 1, 50 * time.Microsecond},
		{true, 0, 8, 0},
	} {
		if got := busyPollFor(c.given, c.flag, c.cpus); got != c.want {
			t.Errorf("busyPollFor(%v, %v, %d) = %v, want %v", c.given, c.flag, c.cpus, got, c.want)
		}
	}
}

// TestBusyPollFollowsTheCPUs: closeduel run confined to one CPU (taskset)
// does not busy-poll unless told to, and on two CPUs it does: its summary
// counts the batches polling took, after 300 one-byte exchanges.
func TestBusyPollFollowsTheCPUs(t *testing.T) {
	roottest.Require(t)
	roottest.RequireTools(t, "taskset")
	if runtime.NumCPU() < 2 {
		t.Skip("needs two CPUs to compare")
	}
	bin := buildBinary(t)
	topo := newBench(t, "bp")
	const addr = "192.168.100.99:80"
	benchtest.Serve(t, topo.Device, addr, func(c net.Conn) { io.Copy(c, c) })
	polled := regexp.MustCompile(`batches +(\d+), (\d+) of them taken by busy-polling`)
	for _, tc := range []struct {
		name   string
		prefix []string
		extra  []string
		polls  bool
	}{
		{"one CPU", []string{"taskset", "-c", "0"}, nil, false},
		{"one CPU, --busy-poll given", []string{"taskset", "-c", "0"}, []string{"--busy-poll", "100us"}, true},
		{"every CPU", nil, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			argv := append(append(append([]string{}, tc.prefix...), bin, "run", "--bridge", "br0", "--control", filepath.Join(t.TempDir(), "ctl.sock")), tc.extra...)
			run := startCloseduel(t, topo.Bridge, "inline (iptables chain", argv...)
			c, err := benchtest.Dial(topo.Client, addr, 3*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			b := make([]byte, 1)
			for range 300 {
				c.SetDeadline(time.Now().Add(3 * time.Second))
				if _, err := c.Write(b); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(c, b); err != nil {
					t.Fatal(err)
				}
			}
			run.stop(t)
			m := polled.FindStringSubmatch(run.out.String())
			if m == nil {
				t.Fatalf("no batch count in the summary:\n%s", run.out.String())
			}
			if got := m[2] != "0"; got != tc.polls || m[1] == "0" {
				t.Errorf("%s batches, %s taken by busy-polling; want polling %v", m[1], m[2], tc.polls)
			}
		})
	}
}
