package nfq

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/closeduel/closeduel/bridgehook"
	"github.com/closeduel/closeduel/segment"
	"github.com/closeduel/closeduel/topology"
)

func TestObserveLogsEverySegmentExactlyOnce(t *testing.T) {
	b := newBench(t, nil)
	w := capture(t, b.topo.Bridge, topology.ClientPort)
	ln := b.listen(t, 80)
	go serveHTTPClose(ln)

	const requests = 30
	for i := 0; i < requests; i++ {
		resp, err := b.headRequest(80)
		if err != nil || !strings.HasPrefix(resp, "HTTP/1.1 200 OK") {
			t.Fatalf("request %d: %q, %v", i, resp, err)
		}
	}
	w.waitQuiet(300 * time.Millisecond)

	var logged []string
	for _, ev := range b.rec.snapshot() {
		if ev.Kind != EventVerdict || !ev.TCP {
			t.Errorf("unexpected event %v tcp=%v", ev.Kind, ev.TCP)
			continue
		}
		if ev.Verdict != Accept {
			t.Errorf("observe gave verdict %v to %s", ev.Verdict, key(&ev.Seg))
		}
		logged = append(logged, key(&ev.Seg))
	}
	var seen []string
	for _, s := range w.segments(t) {
		seen = append(seen, key(&s.Seg))
	}
	sort.Strings(logged)
	sort.Strings(seen)
	// A connection is at least SYN, SYN-ACK, ACK, request, response and
	// two FINs with their ACKs: well over 6 segments each.
	if len(seen) < requests*6 {
		t.Fatalf("captured %d segments on the bridge port for %d requests, want at least %d", len(seen), requests, requests*6)
	}
	if diff := cmp.Diff(seen, logged); diff != "" {
		t.Fatalf("logged segments differ from the wire (-wire +log):\n%s", diff)
	}
	st := b.engine.Stats()
	t.Logf("%d requests: %d segments on the wire, %d logged, %d batches", requests, len(seen), len(logged), st.Batches)
	if st.Packets != uint64(len(seen)) || st.Accepted != uint64(len(seen)) || st.Dropped != 0 {
		t.Fatalf("stats: packets %d accepted %d dropped %d, want %d/%d/0", st.Packets, st.Accepted, st.Dropped, len(seen), len(seen))
	}
	if st.KernelQueueDropped != 0 || st.KernelUserDropped != 0 {
		t.Fatalf("kernel dropped %d (queue) %d (user)", st.KernelQueueDropped, st.KernelUserDropped)
	}
}

func TestStopRemovesEveryRuleAndTrafficFlowsAfter(t *testing.T) {
	b := newBench(t, nil)
	ln := b.listen(t, 80)
	go serveHTTPClose(ln)
	if _, err := b.headRequest(80); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	before, err := bridgehook.Leftovers(ctx, b.topo.Bridge)
	if err != nil || len(before) == 0 {
		t.Fatalf("while running, found no closeduel rule (%v): %v", before, err)
	}
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	left, err := bridgehook.Leftovers(ctx, b.topo.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("rules left after stop: %q", left)
	}
	if _, err := b.headRequest(80); err != nil {
		t.Fatalf("request after stop: %v", err)
	}
}

// dropFirstDeviceFIN drops the first FIN the device sends on each tuple.
type dropFirstDeviceFIN struct {
	seen map[segment.Tuple]bool
}

func (d *dropFirstDeviceFIN) Decide(p *Packet, dc *Decision) {
	s := &p.Seg
	if s.Src.Addr().String() != deviceIP || !s.Flags.Has(segment.FIN) {
		return
	}
	if !d.seen[s.Tuple()] {
		d.seen[s.Tuple()] = true
		dc.Verdict, dc.Rule, dc.Action = Drop, "drop-device-fin", "drop"
	}
}

func TestDroppedServerFINIsRetransmitted(t *testing.T) {
	b := newBench(t, &dropFirstDeviceFIN{seen: map[segment.Tuple]bool{}})
	w := capture(t, b.topo.Bridge, topology.ClientPort)
	ln := b.listen(t, 80)
	go serveHTTPClose(ln)
	if _, err := b.headRequest(80); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // RTO is at least 200 ms
	w.waitQuiet(200 * time.Millisecond)

	var drops, finsLogged int
	for _, ev := range b.rec.snapshot() {
		if ev.Seg.Flags.Has(segment.FIN) && ev.Seg.Src.Addr().String() == deviceIP {
			finsLogged++
			if ev.Verdict == Drop {
				drops++
			}
		}
	}
	if drops != 1 || finsLogged < 2 {
		t.Fatalf("device FINs: %d logged, %d dropped; want >= 2 logged (a retransmission) and 1 dropped", finsLogged, drops)
	}
	// On the wire toward the client, the device's FIN appears only as the
	// retransmission: exactly once per retransmission, never the dropped one.
	var onWire int
	for _, s := range w.segments(t) {
		if s.Seg.Flags.Has(segment.FIN) && s.Seg.Src.Addr().String() == deviceIP {
			onWire++
		}
	}
	if onWire != finsLogged-drops {
		t.Fatalf("device FINs on the wire: %d, want %d (logged minus dropped)", onWire, finsLogged-drops)
	}
}
