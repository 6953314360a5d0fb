package verdictlog

import (
	"path/filepath"
	"runtime"
	"runtime/debug"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPrefaultRecordTakesNoPageFault records a ring's worth of full-size
// packets on one thread and counts that thread's page faults
// (getrusage(RUSAGE_THREAD)): with Prefault none come from the slots; without
// it the kernel maps a page every two or three packets.
func TestPrefaultRecordTakesNoPageFault(t *testing.T) {
	const n = 4096
	fs := fixtures(t)
	ev := fs[2].ev
	ev.Data = make([]byte, DefaultSnapLen)
	copy(ev.Data, fs[2].ev.Data)
	for _, tc := range []struct {
		prefault bool
		min, max int64
	}{
		{prefault: true, min: 0, max: 50},
		{prefault: false, min: n / 4, max: 1 << 30},
	} {
		dir := t.TempDir()
		// Freed heap that earlier tests faulted in would serve the slots
		// without a fault: give it back to the kernel first.
		debug.FreeOSMemory()
		w, err := Open(Config{JSONPath: filepath.Join(dir, "v.jsonl"), PcapPath: filepath.Join(dir, "v.pcapng"), Buffer: n, Prefault: tc.prefault},
			withWriterGate(make(chan struct{})))
		if err != nil {
			t.Fatal(err)
		}
		faults := func() int64 {
			var ru unix.Rusage
			if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
				t.Fatal(err)
			}
			return ru.Minflt + ru.Majflt
		}
		runtime.LockOSThread()
		before := faults()
		for range n {
			w.Record(&ev)
		}
		got := faults() - before
		runtime.UnlockOSThread()
		w.Close()
		if got < tc.min || got > tc.max {
			t.Errorf("Prefault %v: %d page faults recording %d packets of %d bytes, want %d to %d", tc.prefault, got, n, len(ev.Data), tc.min, tc.max)
		}
		t.Logf("Prefault %v: %d page faults in %d Records", tc.prefault, got, n)
	}
}
