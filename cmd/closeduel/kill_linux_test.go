package main

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/closeduel/closeduel/bridgehook"
	"github.com/closeduel/closeduel/internal/benchtest"
	"github.com/closeduel/closeduel/internal/roottest"
)

// TestKill9UnderLoadBypassesAndTheNextRunStartsCleanly kills a run with
// SIGKILL while four clients make requests through it: new connections
// must pass within 1 s (the rule's --queue-bypass, nothing bound to the
// queue), and the next run on the same queue and control socket must
// start, carry traffic and leave nothing behind.
func TestKill9UnderLoadBypassesAndTheNextRunStartsCleanly(t *testing.T) {
	roottest.Require(t)
	bin := buildBinary(t)
	ctx := context.Background()
	topo := newBench(t, "ck")
	benchtest.Serve(t, topo.Device, "192.168.100.99:80", func(c net.Conn) {
		b := make([]byte, 1)
		if _, err := io.ReadFull(c, b); err == nil {
			c.Write(b)
		}
	})
	request := func() error {
		c, err := benchtest.Dial(topo.Client, "192.168.100.99:80", 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		b := []byte{'x'}
		if _, err := c.Write(b); err != nil {
			return err
		}
		_, err = io.ReadFull(c, b)
		return err
	}

	sock := filepath.Join(t.TempDir(), "ctl.sock")
	first := startRun(t, bin, topo.Bridge, sock)

	// Four clients, each one request after another, noting when each
	// request that succeeded had started and ended.
	type done struct{ start, end time.Time }
	var mu sync.Mutex
	var ok []done
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				if request() == nil {
					mu.Lock()
					ok = append(ok, done{start, time.Now()})
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	killed := time.Now()
	first.Process.Signal(syscall.SIGKILL)
	// New connections, opened every 100 ms after the kill by probes of
	// their own: the four clients' requests in flight at the kill may
	// wait for a retransmission (their segments died in the queue), and
	// a new request of theirs starts only after that, so they time the
	// retransmission timer, not the bypass.
	var probes []done
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(killed.Add(time.Duration(i) * 100 * time.Millisecond).Sub(time.Now()))
			start := time.Now()
			if request() == nil {
				mu.Lock()
				probes = append(probes, done{start, time.Now()})
				mu.Unlock()
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	before, after := 0, time.Duration(-1)
	for _, d := range ok {
		if d.end.Before(killed) {
			before++
		}
	}
	for _, d := range append(ok, probes...) {
		if d.start.After(killed) && (after < 0 || d.end.Sub(killed) < after) {
			after = d.end.Sub(killed)
		}
	}
	if before == 0 {
		t.Fatal("no request passed through the run before the kill")
	}
	if after < 0 || after > time.Second {
		t.Fatalf("after kill -9 the first new request completed %v later, want within 1 s (%d requests before)", after, before)
	}
	t.Logf("%d requests before kill -9, first one after it done %v after the kill", before, after)
	if left, _ := bridgehook.Leftovers(ctx, topo.Bridge); len(left) == 0 {
		t.Log("the killed run left no chain (nothing for the next run to clean)")
	}

	// The next run on the same queue and socket.
	second := startRun(t, bin, topo.Bridge, sock)
	out := second.out
	for i := range 5 {
		if err := request(); err != nil {
			t.Fatalf("request %d through the second run: %v\n%s", i, err, out.String())
		}
	}
	second.stop(t)
	if !strings.Contains(out.String(), "summary after") {
		t.Errorf("second run printed no summary:\n%s", out.String())
	}
	if left, err := bridgehook.Leftovers(ctx, topo.Bridge); err != nil || len(left) != 0 {
		t.Errorf("after the second run: rules left %q (%v)", left, err)
	}
	if _, err := os.Stat(sock); err == nil {
		t.Errorf("control socket %s left after the second run", sock)
	}
}
