package nfq

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/closeduel/closeduel/bridgehook"
	"github.com/closeduel/closeduel/internal/benchtest"
	"github.com/closeduel/closeduel/internal/roottest"
	"github.com/closeduel/closeduel/netns"
	"github.com/closeduel/closeduel/segment"
	"github.com/closeduel/closeduel/topology"
)

// connectMany starts n connections from the client namespace without
// waiting for them (non-blocking connects), and closes them at cleanup.
func (b *testBench) connectMany(t *testing.T, n, port int) {
	t.Helper()
	var fds []int
	t.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
	err := netns.Do(b.topo.Client, func() error {
		for range n {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			fds = append(fds, fd)
			sa := &unix.SockaddrInet4{Port: port, Addr: [4]byte{192, 168, 100, 99}}
			if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
}

// waitStats waits up to 5 s for the engine's counters to satisfy ok.
func (b *testBench) waitStats(t *testing.T, what string, ok func(Snapshot) bool) Snapshot {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := b.engine.Stats()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %+v", what, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// synsByPort counts, per client port, the SYNs the device's interface
// received and the SYN verdicts the engine logged as accepted.
func synsByPort(t *testing.T, w *wire, rec *memRecorder) (onWire, accepted map[uint16]int) {
	onWire, accepted = map[uint16]int{}, map[uint16]int{}
	for _, s := range w.segments(t) {
		if s.Seg.Flags == segment.SYN && s.Seg.Dst.Port() == 80 {
			onWire[s.Seg.Src.Port()]++
		}
	}
	for _, ev := range rec.snapshot() {
		if ev.Kind == EventVerdict && ev.TCP && ev.Seg.Flags == segment.SYN && ev.Verdict == Accept {
			accepted[ev.Seg.Src.Port()]++
		}
	}
	return onWire, accepted
}

// TestStopDeliversEveryOneOf1000HeldPacketsOnce holds 1000 SYNs (far
// longer than the test runs), stops the engine as SIGTERM does and counts
// the SYNs on the device's side: every SYN the engine accepted arrives,
// once per verdict (a SYN the client retransmitted meanwhile is a packet
// of its own, held and released too).
func TestStopDeliversEveryOneOf1000HeldPacketsOnce(t *testing.T) {
	const n = 1000
	b := newBench(t, holdSYNs{})
	w := capture(t, b.topo.Device, topology.HostIface)
	b.listen(t, 80)
	b.connectMany(t, n, 80)
	b.waitStats(t, "1000 SYNs held", func(s Snapshot) bool { return s.HeldNow >= n })
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	st := b.engine.Stats()
	if st.Released != st.Held || st.HeldNow != 0 || st.Accepted != st.Packets {
		t.Fatalf("after stop: held %d, released %d, still held %d, accepted %d of %d", st.Held, st.Released, st.HeldNow, st.Accepted, st.Packets)
	}
	w.waitQuiet(200 * time.Millisecond)
	if d := w.drops(); d != 0 {
		t.Fatalf("the capture dropped %d frames: it cannot count", d)
	}
	onWire, accepted := synsByPort(t, w, b.rec)
	if len(accepted) < n {
		t.Fatalf("SYN verdicts for %d ports, want %d", len(accepted), n)
	}
	total := 0
	for port, k := range accepted {
		if onWire[port] != k {
			t.Errorf("port %d: %d SYNs accepted, %d arrived", port, k, onWire[port])
		}
		total += k
	}
	for port := range onWire {
		if accepted[port] == 0 {
			t.Errorf("port %d: a SYN arrived that the engine never accepted", port)
		}
	}
	arrived := 0
	for _, k := range onWire {
		arrived += k
	}
	t.Logf("%d SYNs held, %d released at stop; %d accepted, %d arrived (%d ports)", st.Held, st.Released, total, arrived, len(onWire))
}

// TestFullHoldTableKeepsTrafficFlowingAndCounts holds SYNs with room for
// 100: the other 900 must go on at once, counted as refused, and the
// Decider's view stays whole: held + refused = SYNs decided.
func TestFullHoldTableKeepsTrafficFlowingAndCounts(t *testing.T) {
	const n, room = 1000, 100
	b := newBenchWith(t, Config{Decider: holdSYNs{}, MaxHeld: room})
	w := capture(t, b.topo.Device, topology.HostIface)
	b.listen(t, 80)
	start := time.Now()
	b.connectMany(t, n, 80)
	st := b.waitStats(t, "900 holds refused", func(s Snapshot) bool { return s.HoldOverflow >= n-room })
	if st.Held != room || st.HeldNow != room {
		t.Errorf("held %d (now %d), want the table's %d", st.Held, st.HeldNow, room)
	}
	// The refused SYNs went on at once: the device has them.
	w.waitQuiet(100 * time.Millisecond)
	onWire, _ := synsByPort(t, w, b.rec)
	if len(onWire) < n-room {
		t.Errorf("%d SYNs reached the device %v after the connects, want the %d refused ones", len(onWire), time.Since(start), n-room)
	}
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	st = b.engine.Stats()
	syns := 0
	for _, ev := range b.rec.snapshot() {
		if ev.Kind == EventVerdict && ev.Rule == "hold-syn" {
			syns++
		}
	}
	if uint64(syns) != st.Held+st.HoldOverflow {
		t.Errorf("%d SYN verdicts, want held %d + refused %d", syns, st.Held, st.HoldOverflow)
	}
	if st.Accepted != st.Packets || st.Released != st.Held {
		t.Errorf("accepted %d of %d packets, released %d of %d held", st.Accepted, st.Packets, st.Released, st.Held)
	}
}

// TestGroupSpreadsConnectionsOverTwoQueues runs two engines behind an
// HMARK hook: connections between the same two hosts must land on both
// queues (NFQUEUE's own balancing would put them all on one), every
// request must complete, and every packet get one verdict.
func TestGroupSpreadsConnectionsOverTwoQueues(t *testing.T) {
	roottest.Require(t)
	ctx := context.Background()
	topo := benchtest.Topology(t, fmt.Sprintf("ng%d", os.Getpid()%100000))
	hc := bridgehook.Config{NetNS: topo.Bridge, Queue: 7, Bridge: topology.BridgeName, Queues: 2}
	hook, err := bridgehook.Install(ctx, hc)
	if err != nil {
		t.Fatal(err)
	}
	rec := &memRecorder{}
	g, err := OpenGroup(Config{Queue: 7, NetNS: topo.Bridge, Recorder: rec}, 2)
	if err != nil {
		hook.Remove()
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- g.Run(rctx) }()
	b := &testBench{topo: topo}
	ln := b.listen(t, 80)
	go serveHTTPClose(ln)
	const n = 40
	for i := range n {
		if resp, err := b.headRequest(80); err != nil || !strings.HasPrefix(resp, "HTTP/1.1 200") {
			t.Fatalf("request %d: %q, %v", i, resp, err)
		}
	}
	if err := hook.Remove(); err != nil {
		t.Error(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
	per := []uint64{g.engines[0].Stats().Packets, g.engines[1].Stats().Packets}
	st := g.Stats()
	g.Close()
	if per[0] == 0 || per[1] == 0 {
		t.Errorf("packets per queue %v: want both queues used", per)
	}
	if st.Accepted != st.Packets || uint64(len(rec.snapshot())) != st.Packets || st.Packets < n*5 {
		t.Errorf("stats %+v, %d events: want every packet of %d requests accepted once", st, len(rec.snapshot()), n)
	}
	t.Logf("%d requests, packets per queue %v", n, per)
}

// delayAll delays every segment.
type delayAll struct{ d time.Duration }

func (a delayAll) Decide(_ *Packet, dc *Decision) {
	dc.Delay, dc.Rule, dc.Action = a.d, "delay-all", "delay"
}

// TestKernelQueueOverflowKeepsTrafficFlowingAndIsCounted gives the kernel
// queue room for 8 packets while the engine holds each for 300 ms: the
// kernel lets the rest past unqueued (fail-open), which only the hook's
// counters see. Every SYN must reach the device, and matched = queued +
// passed unqueued, with some of each.
func TestKernelQueueOverflowKeepsTrafficFlowingAndIsCounted(t *testing.T) {
	const n = 200
	b := newBenchWith(t, Config{Decider: delayAll{300 * time.Millisecond}, QueueMaxLen: 8})
	w := capture(t, b.topo.Device, topology.HostIface)
	wc := capture(t, b.topo.Client, topology.HostIface)
	b.listen(t, 80)
	b.connectMany(t, n, 80)
	time.Sleep(100 * time.Millisecond)
	// The first SYNs are held; the rest went on unqueued at once.
	onWire, _ := synsByPort(t, w, b.rec)
	if len(onWire) < n/2 {
		t.Errorf("%d SYNs at the device 100 ms after %d connects: the full queue held traffic up", len(onWire), n)
	}
	// Let the held ones leave and their connections finish, so every
	// segment crosses while the rules are in.
	time.Sleep(700 * time.Millisecond)
	matched, err := b.hook.RemoveCounting()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	st := b.engine.Stats()
	if matched <= st.Packets || st.Packets == 0 {
		t.Fatalf("rules matched %d, engine queued %d: want some queued and some let past", matched, st.Packets)
	}
	w.waitQuiet(200 * time.Millisecond)
	wc.waitQuiet(50 * time.Millisecond)
	if d := w.drops() + wc.drops(); d != 0 {
		t.Fatalf("the captures dropped %d frames", d)
	}
	// What crossed the bridge: the client's segments at the device, the
	// device's at the client.
	arrived := 0
	for _, s := range w.segments(t) {
		if s.Seg.Src.Addr().String() == clientIP {
			arrived++
		}
	}
	for _, s := range wc.segments(t) {
		if s.Seg.Src.Addr().String() == deviceIP {
			arrived++
		}
	}
	if uint64(arrived) != matched {
		t.Errorf("%d segments crossed the bridge, rules matched %d (queued %d + unqueued %d)", arrived, matched, st.Packets, matched-st.Packets)
	}
	t.Logf("matched %d: queued %d, let past a full queue %d; %d arrived", matched, st.Packets, matched-st.Packets, arrived)
}
