package nfq

import (
	"bytes"
	"context"
	"io"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/closeduel/closeduel/netns"
	"github.com/closeduel/closeduel/segment"
	"github.com/closeduel/closeduel/topology"
)

// delaySynAck holds the device's SYN-ACK for delay while on is set.
type delaySynAck struct {
	on    atomic.Bool
	delay time.Duration
}

func (d *delaySynAck) Decide(p *Packet, dc *Decision) {
	if d.on.Load() && p.Seg.Flags == segment.SYN|segment.ACK {
		dc.Delay, dc.Rule, dc.Action = d.delay, "delay-synack", "delay"
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func TestDelayAddsItsDurationToTheExchange(t *testing.T) {
	dec := &delaySynAck{delay: 200 * time.Millisecond}
	// Under SCHED_FIFO, as run --rt-priority puts it: on a loaded machine
	// the normal scheduler let the delay's timer fire 30 ms late.
	b := newBenchWith(t, Config{Decider: dec, RealtimePriority: 10})
	ln := b.listen(t, 80)
	go serveHTTPClose(ln)
	connect := func() time.Duration {
		start := time.Now()
		c, err := b.dial(80)
		el := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		return el
	}
	var base, delayed []time.Duration
	for i := 0; i < 7; i++ { // interleaved, so drift hits both alike
		dec.on.Store(false)
		base = append(base, connect())
		dec.on.Store(true)
		delayed = append(delayed, connect())
	}
	added := median(delayed) - median(base)
	t.Logf("connect: base median %v, delayed median %v, added %v", median(base), median(delayed), added)
	if added < 195*time.Millisecond || added > 205*time.Millisecond {
		t.Fatalf("a 200 ms delay added %v to the exchange, want 200 ms ± 5 ms", added)
	}
	var holds []time.Duration
	for _, ev := range b.rec.snapshot() {
		if ev.Rule == "delay-synack" {
			holds = append(holds, ev.Held)
			if ev.Held < 200*time.Millisecond {
				t.Errorf("logged hold %v: released early", ev.Held)
			}
		}
	}
	if len(holds) != 7 {
		t.Fatalf("logged %d delayed SYN-ACKs, want 7", len(holds))
	}
	if m := median(holds); m > 205*time.Millisecond {
		t.Fatalf("median logged hold %v (all: %v), want 200 ms..205 ms", m, holds)
	}
}

// rewriteSynAckWindow sets the raw window of the device's SYN-ACK.
type rewriteSynAckWindow struct{ win uint16 }

func (r rewriteSynAckWindow) Decide(p *Packet, dc *Decision) {
	if p.Seg.Flags == segment.SYN|segment.ACK {
		segment.SetWindow(p.Data, &p.Seg, r.win)
		dc.Modified, dc.Rewrote, dc.Rule, dc.Action = true, "window", "win", "rewrite"
	}
}

func TestRewrittenWindowArrivesWithValidChecksumAndIsAccepted(t *testing.T) {
	const win = 1234
	b := newBench(t, rewriteSynAckWindow{win: win})
	atClient := capture(t, b.topo.Client, topology.HostIface)
	ln := b.listen(t, 80)
	go serveHTTPClose(ln)
	c, err := b.dial(80)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The client's stack took the SYN-ACK (the connection is up); its
	// send window is the rewritten one, unscaled as on every SYN.
	out, err := netns.Output(context.Background(), b.topo.Client, "ss", "-tni", "dst", deviceIP)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "snd_wnd:1234") {
		t.Fatalf("client's ss does not show snd_wnd:1234:\n%s", out)
	}
	atClient.waitQuiet(100 * time.Millisecond)
	var found bool
	for _, s := range atClient.segments(t) {
		if s.Seg.Flags == segment.SYN|segment.ACK {
			found = true
			if s.Seg.Window != win {
				t.Errorf("SYN-ACK at the client has window %d, want %d", s.Seg.Window, win)
			}
			if !segment.ChecksumsValid(s.IP, &s.Seg) {
				t.Errorf("SYN-ACK at the client has a bad checksum")
			}
		}
	}
	if !found {
		t.Fatal("no SYN-ACK captured at the client")
	}
	if st := b.engine.Stats(); st.Modified != 1 {
		t.Fatalf("engine modified %d packets, want 1", st.Modified)
	}
}

// rstOnMarker injects an RST toward the device right after a client
// segment that carries the marker.
type rstOnMarker struct{ marker []byte }

func (r rstOnMarker) Decide(p *Packet, dc *Decision) {
	s := &p.Seg
	if s.PayloadLen == 0 || !bytes.Contains(p.Data[s.IPHeaderLen+s.TCPHeaderLen:], r.marker) {
		return
	}
	dc.Rule, dc.Action = "inject-rst", "inject"
	dc.AddInject(Inject{Template: segment.Template{
		Tuple: s.Tuple(), Flags: segment.RST, Seq: s.End(),
	}})
}

func TestInjectedRSTTearsDownTheConnection(t *testing.T) {
	b := newBench(t, rstOnMarker{marker: []byte("RST-ME")})
	ln := b.listen(t, 81)
	serverErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			serverErr <- err
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadAll(c)
		serverErr <- err
	}()
	c, err := b.dial(81)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ssDevice := func() string {
		out, err := netns.Output(context.Background(), b.topo.Device, "ss", "-tnH", "state", "all", "sport", "= :81")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	if got := ssDevice(); !strings.Contains(got, "ESTAB") {
		t.Fatalf("before the RST, device's ss shows %q, want an ESTAB connection", got)
	}
	if _, err := c.Write([]byte("RST-ME")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-serverErr:
		if err == nil || !strings.Contains(err.Error(), "reset") {
			t.Fatalf("device's read ended with %v, want connection reset", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("device's connection still open 5 s after the injected RST")
	}
	ln.Close()
	if got := ssDevice(); got != "" {
		t.Fatalf("after the RST, device's ss still shows %q", got)
	}
	if st := b.engine.Stats(); st.Injected != 1 || st.SendFailed != 0 {
		t.Fatalf("injected %d, send failures %d; want 1 and 0", st.Injected, st.SendFailed)
	}
	var logged int
	for _, ev := range b.rec.snapshot() {
		if ev.Kind == EventInjected {
			logged++
			if ev.Seg.Flags != segment.RST || ev.Seg.Dst.Port() != 81 {
				t.Errorf("logged injection %s, want an RST to port 81", key(&ev.Seg))
			}
		}
	}
	if logged != 1 {
		t.Fatalf("logged %d injections, want 1", logged)
	}
}

// duplicateMarked duplicates client segments that carry payload.
type duplicateMarked struct{}

func (duplicateMarked) Decide(p *Packet, dc *Decision) {
	if p.Seg.PayloadLen > 0 && p.Seg.Dst.Port() == 80 {
		dc.Duplicates, dc.DupGap, dc.Rule, dc.Action = 1, 10*time.Millisecond, "dup", "duplicate"
	}
}

func TestDuplicateArrivesTwice(t *testing.T) {
	b := newBench(t, duplicateMarked{})
	atDevice := capture(t, b.topo.Bridge, topology.DevicePort)
	ln := b.listen(t, 80)
	go serveHTTPClose(ln)
	resp, err := b.headRequest(80)
	if err != nil || !strings.HasPrefix(resp, "HTTP/1.1 200") {
		t.Fatalf("request: %q, %v", resp, err)
	}
	atDevice.waitQuiet(200 * time.Millisecond)
	var copies []time.Time
	for _, s := range atDevice.segments(t) {
		if s.Seg.Dst.Port() == 80 && s.Seg.PayloadLen > 0 {
			copies = append(copies, s.At)
		}
	}
	if len(copies) != 2 {
		t.Fatalf("request segment reached the device %d times, want 2", len(copies))
	}
	if gap := copies[1].Sub(copies[0]); gap < 9*time.Millisecond || gap > 30*time.Millisecond {
		t.Fatalf("copy came %v after the original, want about 10 ms", gap)
	}
}

// holdFirstUntilNext holds the client's first data segment until its next
// segment on the same connection has passed.
type holdFirstUntilNext struct{ held atomic.Bool }

func (h *holdFirstUntilNext) Decide(p *Packet, dc *Decision) {
	if p.Seg.Dst.Port() != 82 || p.Seg.PayloadLen == 0 {
		return
	}
	if !h.held.Swap(true) {
		dc.HoldKey, dc.Rule, dc.Action = 42, "reorder", "hold"
		return
	}
	dc.AddRelease(42)
}

func TestHoldUntilNextReordersTheTwoSegments(t *testing.T) {
	b := newBench(t, &holdFirstUntilNext{})
	atDevice := capture(t, b.topo.Bridge, topology.DevicePort)
	ln := b.listen(t, 82)
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		data, _ := io.ReadAll(c)
		got <- string(data)
	}()
	c, err := b.dial(82)
	if err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).SetNoDelay(true)
	c.Write([]byte("first"))
	time.Sleep(50 * time.Millisecond)
	c.Write([]byte("second"))
	time.Sleep(50 * time.Millisecond)
	c.Close()
	if s := <-got; s != "firstsecond" {
		t.Fatalf("device read %q, want the stream reassembled as \"firstsecond\"", s)
	}
	atDevice.waitQuiet(100 * time.Millisecond)
	var order []int
	for _, s := range atDevice.segments(t) {
		if s.Seg.Dst.Port() == 82 && s.Seg.PayloadLen > 0 {
			order = append(order, s.Seg.PayloadLen)
		}
	}
	// "second" (6 bytes) must reach the device before "first" (5 bytes);
	// the stack may also see a retransmission of "first" later.
	if len(order) < 2 || order[0] != 6 || order[1] != 5 {
		t.Fatalf("payload lengths in order at the device: %v, want [6 5 ...]", order)
	}
}

func TestMalformedTCPIsPassedAndCounted(t *testing.T) {
	b := newBench(t, nil)
	atDevice := capture(t, b.topo.Bridge, topology.DevicePort)
	// Learn the device's MAC from a real exchange first.
	ln := b.listen(t, 80)
	go serveHTTPClose(ln)
	if _, err := b.headRequest(80); err != nil {
		t.Fatal(err)
	}
	cliMAC, devMAC := b.macs(t)
	frame, err := segment.Build(nil, cliMAC, devMAC, &segment.Template{
		Tuple: segment.Tuple{Src: mustAddrPort(clientIP + ":4444"), Dst: mustAddrPort(deviceIP + ":80")},
		Flags: segment.ACK, Seq: 1, Ack: 1, Window: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	frame[segment.EthernetHeaderLen+20+12] = 2 << 4 // TCP data offset 2: invalid
	before := b.engine.Stats().Malformed
	if err := b.sendFrames(devMAC, frame); err != nil {
		t.Fatal(err)
	}
	atDevice.waitQuiet(100 * time.Millisecond)
	if got := b.engine.Stats().Malformed - before; got != 1 {
		t.Fatalf("malformed count rose by %d, want 1", got)
	}
	atDevice.mu.Lock()
	defer atDevice.mu.Unlock()
	var passed int
	for _, f := range atDevice.frames {
		if bytes.Equal(f.data, frame) {
			passed++
		}
	}
	if passed != 1 {
		t.Fatalf("malformed frame reached the device port %d times, want 1", passed)
	}
}
