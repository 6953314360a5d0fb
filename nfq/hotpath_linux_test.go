package nfq

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/closeduel/closeduel/segment"
)

// countingRecorder counts events without keeping them.
type countingRecorder struct{ n int }

func (c *countingRecorder) Record(*Event) { c.n++ }

// loadBatch fills the engine's receive buffers with n queued TCP packets.
func loadBatch(t testing.TB, e *Engine, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		frame, err := segment.Build(nil, []byte{2, 0, 0, 0, 0, 1}, []byte{2, 0, 0, 0, 0, 2}, &segment.Template{
			Tuple: segment.Tuple{Src: mustAddrPort("192.168.100.1:40000"), Dst: mustAddrPort("192.168.100.99:80")},
			Flags: segment.ACK, Seq: segment.Seq(1000 + i), Ack: 1, Window: 512,
		})
		if err != nil {
			t.Fatal(err)
		}
		msg := packetMessage(uint32(i+1), 4, 5, []byte{2, 0, 0, 0, 0, 1}, frame[segment.EthernetHeaderLen:])
		copy(e.bufs[i], msg)
		e.msgs[i].len = uint32(len(msg))
	}
	e.nrecv = n
}

func newTestEngine(d Decider, r Recorder) *Engine {
	e := &Engine{}
	if err := e.initCarrier(Config{Queue: 7, Decider: d, Recorder: r}, e); err != nil {
		panic(err)
	}
	e.initBuffers()
	return e
}

func TestHotPathGivesOneVerdictPerPacketWithoutAllocating(t *testing.T) {
	rec := &countingRecorder{}
	e := newTestEngine(Observe{}, rec)
	const n = 32
	loadBatch(t, e, n)
	now := time.Now()
	e.handleBatch(now, false) // warm-up: learns the host
	verdicts := func() int {
		count := 0
		for b := e.send; len(b) >= nlmsgHdrLen; {
			typ, l := messageHeader(b)
			if typ != nfnlSubsysQ<<8|nfqMsgVerdict {
				t.Fatalf("message type %#x in the send buffer", typ)
			}
			count++
			b = b[l:]
		}
		return count
	}
	if got := verdicts(); got != n {
		t.Fatalf("%d verdicts for %d packets", got, n)
	}
	ids := map[uint32]bool{}
	for b := e.send; len(b) > 0; {
		_, l := messageHeader(b)
		ids[binary.BigEndian.Uint32(b[28:32])] = true
		b = b[l:]
	}
	if len(ids) != n {
		t.Fatalf("verdicts name %d distinct packet ids, want %d", len(ids), n)
	}
	allocs := testing.AllocsPerRun(200, func() {
		e.send = e.send[:0]
		e.nrecv = n
		e.handleBatch(now, false)
	})
	if allocs != 0 {
		t.Fatalf("deciding a batch of %d packets allocated %.1f times, want 0", n, allocs)
	}
	if rec.n != n*202 {
		t.Fatalf("recorder saw %d events, want %d", rec.n, n*202)
	}
}

func BenchmarkHandleBatch(b *testing.B) {
	e := newTestEngine(Observe{}, &countingRecorder{})
	const n = 64
	loadBatch(b, e, n)
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.send = e.send[:0]
		e.nrecv = n
		e.handleBatch(now, false)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/packet")
}
