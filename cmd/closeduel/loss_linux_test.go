package main

import (
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/closeduel/closeduel/internal/benchtest"
	"github.com/closeduel/closeduel/internal/roottest"
)

// TestNoLossWarningWithoutLoss: a run under several thousand packets a
// second, with nothing lost, warns of nothing while it runs (the loss
// watch checks every second) and its summary lets no packet past
// unqueued. Before the watch read the hook's counter ahead of the engine's
// snapshot, the packets matched while iptables printed its counters
// looked let past a full queue, and the run warned of "kernel queue full"
// every second.
func TestNoLossWarningWithoutLoss(t *testing.T) {
	roottest.Require(t)
	bin := buildBinary(t)
	topo := newBench(t, "lw")
	const addr = "192.168.100.99:80"
	benchtest.Serve(t, topo.Device, addr, func(c net.Conn) { io.Copy(c, c) })
	dir := t.TempDir()
	run := startRun(t, bin, topo.Bridge, filepath.Join(dir, "ctl.sock"),
		"--log", filepath.Join(dir, "v.jsonl"), "--pcap", filepath.Join(dir, "c.pcapng"))

	// Four connections ping-pong one byte for 3.5 s: three checks or more.
	var wg sync.WaitGroup
	var mu sync.Mutex
	exchanges := 0
	stop := time.Now().Add(3500 * time.Millisecond)
	for range 4 {
		c, err := benchtest.Dial(topo.Client, addr, 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		wg.Go(func() {
			n := 0
			b := make([]byte, 1)
			for time.Now().Before(stop) {
				c.SetDeadline(time.Now().Add(3 * time.Second))
				if _, err := c.Write(b); err != nil {
					t.Error(err)
					return
				}
				if _, err := io.ReadFull(c, b); err != nil {
					t.Error(err)
					return
				}
				n++
			}
			mu.Lock()
			exchanges += n
			mu.Unlock()
		})
	}
	wg.Wait()
	run.stop(t)
	out := run.out.String()
	// Two segments an exchange at least (a byte each way), in 3.5 s.
	if rate := float64(2*exchanges) / 3.5; rate < 2000 {
		t.Fatalf("only %.0f segments/s: too few to show the watch's skew (%d exchanges)", rate, exchanges)
	}
	for _, warn := range []string{"kernel queue full", "kernel queue overflow", "verdict log is losing", "hold table full"} {
		if strings.Contains(out, warn) {
			t.Errorf("warned %q with nothing lost (%d exchanges):\n%s", warn, exchanges, out)
		}
	}
	if !strings.Contains(out, "passed unqueued 0 ") {
		t.Errorf("the summary lets packets past unqueued:\n%s", out)
	}
}
