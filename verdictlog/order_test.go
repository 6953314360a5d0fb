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
