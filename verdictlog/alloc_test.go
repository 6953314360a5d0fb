package verdictlog

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/closeduel/closeduel/vlanmark"
)

// TestRecordAllocs checks that Record allocates nothing, both when it
// queues the event and when the ring is full and it counts a loss. The
// writer goroutine is held meanwhile: AllocsPerRun counts every
// goroutine's allocations, and the writer's are not Record's.
func TestRecordAllocs(t *testing.T) {
	const runs = 1000
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{name: "json and pcapng", cfg: Config{JSONPath: "v.jsonl", PcapPath: "v.pcapng"}},
		{name: "json only", cfg: Config{JSONPath: "v.jsonl"}},
		{name: "pcapng only", cfg: Config{PcapPath: "v.pcapng"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := tc.cfg
			if cfg.JSONPath != "" {
				cfg.JSONPath = filepath.Join(dir, cfg.JSONPath)
			}
			if cfg.PcapPath != "" {
				cfg.PcapPath = filepath.Join(dir, cfg.PcapPath)
			}
			cfg.Buffer = runs + 1 // AllocsPerRun calls once more to warm up
			w, err := Open(cfg, withWriterGate(make(chan struct{})))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			fs := fixtures(t)
			ev := fs[2].ev // a rewritten segment with payload: every field set
			if got := testing.AllocsPerRun(runs, func() { w.Record(&ev) }); got != 0 {
				t.Errorf("Record queueing an event: %v allocations, want 0", got)
			}
			if got := testing.AllocsPerRun(runs, func() { w.Record(&ev) }); got != 0 {
				t.Errorf("Record with the ring full: %v allocations, want 0", got)
			}
			if st := w.Stats(); st.Lost != runs+1 || st.Recorded != 2*(runs+1) {
				t.Errorf("Stats %+v, want %d lost of %d", st, runs+1, 2*(runs+1))
			}
		})
	}
}

// BenchmarkRecord measures Record alone: "queued" with a free slot every
// time (with the timer stopped, the held writer's slots are handed back
// unwritten), for a ring that stays in the CPU cache and for the 16384
// slots closeduel run uses, whose slots are cold by the time the ring
// comes round; "ring full" counting losses.
func BenchmarkRecord(b *testing.B) {
	open := func(b *testing.B, buffer int) *Writer {
		dir := b.TempDir()
		w, err := Open(Config{JSONPath: filepath.Join(dir, "v.jsonl"), PcapPath: filepath.Join(dir, "v.pcapng"), Buffer: buffer},
			withWriterGate(make(chan struct{})))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { w.Close() })
		return w
	}
	for _, buffer := range []int{1024, 16384} {
		b.Run(fmt.Sprintf("queued/buffer=%d", buffer), func(b *testing.B) {
			w := open(b, buffer)
			ev := fixtures(b)[2].ev
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if i%buffer == buffer-1 {
					b.StopTimer()
					// The held writer goroutine touches nothing.
					for s := w.ring.Peek(); s != nil; s = w.ring.Peek() {
						w.ring.Release(s)
					}
					b.StartTimer()
				}
				w.Record(&ev)
			}
			b.StopTimer()
			if st := w.Stats(); st.Lost != 0 {
				b.Fatalf("%d lost", st.Lost)
			}
		})
	}
	b.Run("ring full", func(b *testing.B) {
		const buffer = 256
		w := open(b, buffer)
		ev := fixtures(b)[2].ev
		for range buffer {
			w.Record(&ev)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			w.Record(&ev)
		}
		b.StopTimer()
		if st := w.Stats(); st.Lost != uint64(b.N) {
			b.Fatalf("%d lost, want %d", st.Lost, b.N)
		}
	})
}

// BenchmarkRecordWriting measures Record with the writer goroutine running
// and writing real files, as in a run. -benchmem counts the writer's
// allocations too (the runtime's counters are process-wide): none for the
// JSON log; the pcapng's are gopacket's NgWriter's, on the writer
// goroutine. A tight loop records far faster than any file can take, so
// most events are lost: lost/op says how many.
func BenchmarkRecordWriting(b *testing.B) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{name: "json", cfg: Config{JSONPath: "v.jsonl"}},
		{name: "pcapng", cfg: Config{PcapPath: "v.pcapng"}},
		{name: "json+pcapng", cfg: Config{JSONPath: "v.jsonl", PcapPath: "v.pcapng"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			dir := b.TempDir()
			cfg := tc.cfg
			if cfg.JSONPath != "" {
				cfg.JSONPath = filepath.Join(dir, cfg.JSONPath)
			}
			if cfg.PcapPath != "" {
				cfg.PcapPath = filepath.Join(dir, cfg.PcapPath)
			}
			w, err := Open(cfg)
			if err != nil {
				b.Fatal(err)
			}
			ev := fixtures(b)[2].ev
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				w.Record(&ev)
			}
			b.StopTimer()
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			st := w.Stats()
			b.ReportMetric(float64(st.Lost)/float64(b.N), "lost/op")
		})
	}
}

// BenchmarkWriter measures the writer goroutine's work per event: the
// benchmark holds the goroutine and runs its drain itself after each
// Record, so ns/op and allocs/op are one event queued, encoded and written
// (through the file buffers) to disk.
func BenchmarkWriter(b *testing.B) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{name: "json", cfg: Config{JSONPath: "v.jsonl"}},
		{name: "pcapng", cfg: Config{PcapPath: "v.pcapng"}},
		{name: "json+pcapng", cfg: Config{JSONPath: "v.jsonl", PcapPath: "v.pcapng"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			dir := b.TempDir()
			cfg := tc.cfg
			if cfg.JSONPath != "" {
				cfg.JSONPath = filepath.Join(dir, cfg.JSONPath)
			}
			if cfg.PcapPath != "" {
				cfg.PcapPath = filepath.Join(dir, cfg.PcapPath)
			}
			cfg.Buffer = 16
			// The held writer goroutine touches nothing until Close, so
			// the benchmark may drive its drain.
			w, err := Open(cfg, withWriterGate(make(chan struct{})))
			if err != nil {
				b.Fatal(err)
			}
			ev := fixtures(b)[2].ev
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				w.Record(&ev)
				w.drain()
			}
			b.StopTimer()
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			if st := w.Stats(); st.Written != uint64(b.N) {
				b.Fatalf("Stats %+v, want %d written", st, b.N)
			}
		})
	}
}

// TestWriterAllocs checks that the whole log path allocates nothing per
// event once warm: Record, then the writer's encoding of the JSON line and
// the pcapng block and their buffered write.
func TestWriterAllocs(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{JSONPath: filepath.Join(dir, "v.jsonl"), PcapPath: filepath.Join(dir, "v.pcapng"), Buffer: 16}
	// The held writer goroutine touches nothing until Close, so the test
	// may drive its drain.
	w, err := Open(cfg, withWriterGate(make(chan struct{})))
	if err != nil {
		t.Fatal(err)
	}
	fs := fixtures(t)
	for i := range fs {
		ev := fs[i].ev
		if got := testing.AllocsPerRun(1000, func() { w.Record(&ev); w.drain() }); got != 0 {
			t.Errorf("%s: Record and write: %v allocations per event, want 0", fs[i].name, got)
		}
		// The same packet with a VLAN tag: written as an Ethernet frame.
		ev.VLAN = vlanmark.Tag{TPID: vlanmark.TPID8021Q, ID: 10}
		if got := testing.AllocsPerRun(1000, func() { w.Record(&ev); w.drain() }); got != 0 {
			t.Errorf("%s, VLAN 10: Record and write: %v allocations per event, want 0", fs[i].name, got)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Written != st.Recorded || st.Lost != 0 {
		t.Errorf("Stats %+v, want every event written", st)
	}
}
