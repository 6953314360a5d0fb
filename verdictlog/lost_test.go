package verdictlog

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/closeduel/closeduel/nfq"
	"github.com/closeduel/closeduel/segment"
)

// synEvent returns the i-th event of a stream of accepted SYNs: packet
// id i, arriving i ms after t0.
func synEvent(t testing.TB, i int) nfq.Event {
	pkt, seg := tcpPacket(t, client, device, segment.SYN, uint32(i), 0, 1000, 0)
	at := t0.Add(time.Duration(i) * time.Millisecond)
	return nfq.Event{Kind: nfq.EventVerdict, Arrived: at, Left: at, PacketID: uint32(i), Verdict: nfq.Accept,
		Decision: &nfq.Decision{Conn: 1}, Data: pkt, Seg: seg, TCP: true}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// entry is the part of a record the loss tests look at.
type entry struct {
	Kind string
	ID   int // event records
	N    int // lost records
	Lost int // lost and summary records
}

func entries(recs []map[string]any) []entry {
	var es []entry
	for _, r := range recs {
		e := entry{Kind: r["kind"].(string)}
		e.ID, _ = r["id"].(int)
		e.N, _ = r["n"].(int)
		e.Lost, _ = r["lost"].(int)
		es = append(es, e)
	}
	return es
}

// TestLost holds the writer goroutine so the ring fills, and checks that
// exactly the events that found no slot are counted, marked in the JSON
// log where they went missing and in the pcapng's epb_dropcount, and that
// every other event is written.
func TestLost(t *testing.T) {
	const buffer = 8
	for _, tc := range []struct {
		name        string
		before      int // events recorded while the writer is held
		after       int // events recorded once it has drained
		releaseGate bool
	}{
		{name: "gap in the middle", before: 20, after: 3, releaseGate: true},
		{name: "gap at the end", before: 11, after: 0},
		{name: "ring exactly full", before: buffer, after: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			jsonPath, pcapPath := filepath.Join(dir, "v.jsonl"), filepath.Join(dir, "v.pcapng")
			gate := make(chan struct{})
			w, err := Open(Config{JSONPath: jsonPath, PcapPath: pcapPath, Buffer: buffer, Version: "test-1.0"},
				WithClock(func() time.Time { return clock }), withWriterGate(gate))
			if err != nil {
				t.Fatal(err)
			}
			evs := make([]nfq.Event, tc.before+tc.after+1)
			for i := 1; i < len(evs); i++ {
				evs[i] = synEvent(t, i)
			}
			for i := 1; i <= tc.before; i++ {
				w.Record(&evs[i])
			}
			lost := max(0, tc.before-buffer)
			queued := tc.before - lost
			if diff := cmp.Diff(Stats{Recorded: uint64(tc.before), Lost: uint64(lost)}, w.Stats()); diff != "" {
				t.Errorf("Stats with the writer held (-want +got):\n%s", diff)
			}
			if w.Lost() != uint64(lost) {
				t.Errorf("Lost() = %d, want %d", w.Lost(), lost)
			}
			if tc.releaseGate {
				close(gate)
				waitFor(t, "the writer to drain the ring", func() bool { return w.Stats().Written == uint64(queued) })
			}
			for i := tc.before + 1; i <= tc.before+tc.after; i++ {
				w.Record(&evs[i])
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			total := tc.before + tc.after
			st := w.Stats()
			if diff := cmp.Diff(Stats{Recorded: uint64(total), Written: uint64(total - lost), Lost: uint64(lost)}, st); diff != "" {
				t.Errorf("final Stats (-want +got):\n%s", diff)
			}
			if st.Written+st.Lost != st.Recorded {
				t.Errorf("Written %d + Lost %d != Recorded %d", st.Written, st.Lost, st.Recorded)
			}

			want := []entry{{Kind: "start"}}
			for i := 1; i <= queued; i++ {
				want = append(want, entry{Kind: "verdict", ID: i})
			}
			if lost > 0 {
				want = append(want, entry{Kind: "lost", N: lost, Lost: lost})
			}
			for i := tc.before + 1; i <= total; i++ {
				want = append(want, entry{Kind: "verdict", ID: i})
			}
			want = append(want, entry{Kind: "summary", Lost: lost})
			recs := readJSONL(t, jsonPath)
			if diff := cmp.Diff(want, entries(recs)); diff != "" {
				t.Errorf("JSON log (-want +got):\n%s", diff)
			}
			// The gap marker is dated by the event after it, or by Close.
			for _, r := range recs {
				if r["kind"] != "lost" {
					continue
				}
				wantT := int(clock.UnixNano())
				if tc.after > 0 {
					wantT = int(evs[tc.before+1].Arrived.UnixNano())
				}
				if r["t"] != wantT {
					t.Errorf("lost record t = %v, want %d", r["t"], wantT)
				}
			}

			frames, stats := readPcap(t, pcapPath, DefaultSnapLen)
			var gotDrops, wantDrops []uint64
			for _, f := range frames {
				gotDrops = append(gotDrops, f.Drops)
			}
			for i := 1; i <= queued; i++ {
				wantDrops = append(wantDrops, 0)
			}
			for i := tc.before + 1; i <= total; i++ {
				d := uint64(0)
				if i == tc.before+1 {
					d = uint64(lost)
				}
				wantDrops = append(wantDrops, d)
			}
			if diff := cmp.Diff(wantDrops, gotDrops); diff != "" {
				t.Errorf("epb_dropcount per frame (-want +got):\n%s", diff)
			}
			if stats.PacketsReceived != uint64(total) || stats.PacketsDropped != uint64(lost) {
				t.Errorf("interface statistics received %d dropped %d, want %d and %d",
					stats.PacketsReceived, stats.PacketsDropped, total, lost)
			}
		})
	}
}
