package verdictlog

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/closeduel/closeduel/internal/roottest"
)

// TestFullDiskIsCountedAndTheFilesStayParseable writes the log to a small
// tmpfs, fills it up, goes on recording, then makes room again: the loss
// must show in Stats while it happens, every event must be written or
// counted (exactly once), both files must parse to their last record, and
// the closing records must carry the counts.
func TestFullDiskIsCountedAndTheFilesStayParseable(t *testing.T) {
	roottest.Require(t)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "closeduel-test", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	jsonPath, pcapPath := filepath.Join(dir, "v.jsonl"), filepath.Join(dir, "v.pcapng")
	w, err := Open(Config{JSONPath: jsonPath, PcapPath: pcapPath, Buffer: 4096, Version: "test-1.0"})
	if err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 4096)
	for {
		if _, err := f.Write(zeros); err != nil {
			break
		}
	}
	f.Close()

	id := 0
	record := func(n int) {
		for range n {
			id++
			ev := synEvent(t, id)
			w.Record(&ev)
			if id%500 == 0 {
				time.Sleep(20 * time.Millisecond) // let the writer keep up
			}
		}
	}
	waitFor := func(what string, ok func(Stats) bool) Stats {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			st := w.Stats()
			if ok(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: Stats %+v", what, st)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	record(5000)
	st := waitFor("loss reported while the disk is full", func(s Stats) bool { return s.Failed > 0 && s.LastError != "" })
	if !strings.Contains(st.LastError, "no space left") {
		t.Errorf("LastError %q, want it to say the disk is full", st.LastError)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	before := st.Written
	record(2000)
	waitFor("writing again once there is room", func(s Stats) bool { return s.Written >= before+2000 })

	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Errorf("Close: %v, want the first error, a full disk", err)
	}
	st = w.Stats()
	if st.Recorded != uint64(id) || st.Written+st.Lost+st.Failed != st.Recorded || st.Failed == 0 {
		t.Fatalf("Stats %+v: want %d recorded = written + lost + failed, some failed", st, id)
	}

	recs := readJSONL(t, jsonPath) // fails on any broken line
	events := 0
	ids := map[int]bool{}
	var summary map[string]any
	for _, r := range recs {
		switch r["kind"] {
		case "verdict":
			events++
			if ids[r["id"].(int)] {
				t.Fatalf("event %v logged twice", r["id"])
			}
			ids[r["id"].(int)] = true
		case "summary":
			summary = r
		}
	}
	if uint64(events) < st.Written || uint64(events) > st.Written+st.Failed {
		t.Errorf("JSON log holds %d events, want between written %d and written+failed %d", events, st.Written, st.Written+st.Failed)
	}
	if summary == nil {
		t.Fatal("no summary record after room was made")
	}
	if summary["failed"] != int(st.Failed) || summary["lost"] != int(st.Lost) {
		t.Errorf("summary failed %v lost %v, want %d and %d", summary["failed"], summary["lost"], st.Failed, st.Lost)
	}
	frames, isb := readPcap(t, pcapPath, DefaultSnapLen) // fails on any broken block
	if uint64(len(frames)) < st.Written || uint64(len(frames)) > st.Written+st.Failed {
		t.Errorf("pcapng holds %d frames, want between written %d and written+failed %d", len(frames), st.Written, st.Written+st.Failed)
	}
	if isb.PacketsDropped != st.Lost+st.Failed || isb.PacketsReceived != st.Recorded {
		t.Errorf("interface statistics: received %d dropped %d, want %d and %d", isb.PacketsReceived, isb.PacketsDropped, st.Recorded, st.Lost+st.Failed)
	}
	t.Logf("%d events: %d written, %d failed (disk full), %d lost (ring); JSON holds %d, pcapng %d", id, st.Written, st.Failed, st.Lost, events, len(frames))
}
