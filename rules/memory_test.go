package rules

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/closeduel/closeduel/nfq"
	"github.com/closeduel/closeduel/segment"
)

// TestMemoryWith100kConnections tracks 100k connections at once (a SYN
// each, from distinct clients) and bounds the Decider's memory, the
// tracker's included (360 bytes a connection in tcpstate.Conn, 34 MiB;
// 36.5 MiB measured in all). With the engine's buffers and the verdict
// log's ring closeduel run peaks at about 85 MiB resident
// (cmd/closeduel's TestRSSWith100kConnections, a real run).
func TestMemoryWith100kConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	const n = 100_000
	f := mustParse(t, `experiment: many
about: Track many connections.
tracker: { max-conns: 100000 }
rules:
  - name: never
    when: { ports: 9, has: [URG] }
    do: drop
`)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	d := NewDecider(f, Options{})
	dst := netip.AddrPortFrom(device, 80)
	var dec nfq.Decision
	p := &nfq.Packet{TCP: true}
	for i := range n {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 40000)
		p.Time = t0.Add(time.Duration(i) * time.Microsecond)
		p.Seg = segment.Segment{Src: src, Dst: dst, Flags: segment.SYN, Seq: segment.Seq(i), Window: 64240, WindowScale: -1}
		dec = nfq.Decision{}
		d.Decide(p, &dec)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if got := d.TrackerStats(); got == nil {
		t.Fatal("no tracker stats")
	}
	grew := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("100k connections: heap in use grew by %.1f MiB", float64(grew)/(1<<20))
	const budget = 48 << 20
	if grew > budget {
		t.Errorf("100k connections take %.1f MiB of heap, want at most %d MiB", float64(grew)/(1<<20), budget>>20)
	}
	runtime.KeepAlive(d)
}
