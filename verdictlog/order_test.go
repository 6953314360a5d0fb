package verdictlog

import (
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestConcurrentOrder records from several goroutines at once, with a
// small ring so some events are lost, while one of them also logs toggles.
// Every event must be written or counted lost, each goroutine's events
// must keep their order, and each toggle must come after the event its
// goroutine recorded just before it.
func TestConcurrentOrder(t *testing.T) {
	const (
		producers = 4
		perProd   = 5000
	)
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "v.jsonl")
	w, err := Open(Config{JSONPath: jsonPath, PcapPath: filepath.Join(dir, "v.pcapng"), Buffer: 256},
		WithClock(func() time.Time { return clock }))
	if err != nil {
		t.Fatal(err)
	}
	base := synEvent(t, 1)
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := base
			for i := range perProd {
				ev.PacketID = uint32(p*1_000_000 + i)
				w.Record(&ev)
				if i%8 == 0 {
					runtime.Gosched() // let the writer in now and then
				}
				if p == 0 && i%100 == 0 {
					w.Toggled(t0, fmt.Sprintf("after-%d", ev.PacketID), i%200 == 0)
				}
			}
		}()
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st := w.Stats()
	if st.Recorded != producers*perProd || st.Written+st.Lost != st.Recorded || st.Failed != 0 {
		t.Fatalf("Stats %+v: want %d recorded, all written or lost", st, producers*perProd)
	}
	t.Logf("%d written, %d lost", st.Written, st.Lost)

	recs := readJSONL(t, jsonPath)
	last := make(map[int]int) // producer -> last id seen
	seen := make(map[int]bool)
	var events, toggles, lostMarked int
	for _, r := range recs {
		switch r["kind"] {
		case "verdict":
			id := r["id"].(int)
			p := id / 1_000_000
			if prev, ok := last[p]; ok && id <= prev {
				t.Fatalf("producer %d: id %d logged after %d", p, id, prev)
			}
			last[p] = id
			seen[id] = true
			events++
		case "toggle":
			toggles++
		case "lost":
			lostMarked += r["n"].(int)
		}
	}
	// Producer 0's events up to X came before its toggle "after-X", so
	// none of them may follow it in the log.
	pendingToggle := -1
	for _, r := range recs {
		switch r["kind"] {
		case "toggle":
			fmt.Sscanf(r["rule"].(string), "after-%d", &pendingToggle)
		case "verdict":
			if id := r["id"].(int); id/1_000_000 == 0 && pendingToggle >= 0 && id <= pendingToggle {
				t.Fatalf("event %d logged after the toggle that followed it (after-%d)", id, pendingToggle)
			}
		}
	}
	if uint64(events) != st.Written || uint64(lostMarked) != st.Lost || toggles != perProd/100 {
		t.Errorf("log holds %d events, %d marked lost, %d toggles; want %d, %d, %d",
			events, lostMarked, toggles, st.Written, st.Lost, perProd/100)
	}
}

// TestFlushUnderLoad keeps the writer busy for several flush intervals
// and checks that it still flushes on time: Written must grow while events
// keep coming, not only at Close.
func TestFlushUnderLoad(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(Config{JSONPath: filepath.Join(dir, "v.jsonl"), PcapPath: filepath.Join(dir, "v.pcapng"), Buffer: 64})
	if err != nil {
		t.Fatal(err)
	}
	ev := synEvent(t, 1)
	start := time.Now()
	var writtenDuringLoad uint64
	for time.Since(start) < 5*flushInterval {
		for range 1000 {
			w.Record(&ev)
		}
		if time.Since(start) > 3*flushInterval {
			writtenDuringLoad = max(writtenDuringLoad, w.Stats().Written)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st := w.Stats()
	t.Logf("%d recorded, %d written (%d of them seen written during the load), %d lost", st.Recorded, st.Written, writtenDuringLoad, st.Lost)
	if writtenDuringLoad == 0 {
		t.Error("nothing flushed while the writer was busy")
	}
	if st.Written+st.Lost != st.Recorded {
		t.Errorf("Written %d + Lost %d != Recorded %d", st.Written, st.Lost, st.Recorded)
	}
}
