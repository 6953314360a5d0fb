package analysis

import (
	"bufio"
	"context"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/closeduel/closeduel/segment"
	"github.com/closeduel/closeduel/tcpstate"
)

// vmHWM returns the process's peak resident set size in bytes (Linux), 0
// where unknown.
func vmHWM() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// closedTuples feeds n distinct tuples, each a clean close (SYN, SYN+ACK,
// ACK, FIN, FIN, ACK) within a few seconds, so that every one is still
// held (TIME-WAIT) at the end.
func closedTuples(a *Analyzer, n int) {
	const (
		S, A, F = segment.SYN, segment.ACK, segment.FIN
	)
	server := netip.AddrPortFrom(netip.MustParseAddr("10.9.0.1"), 80)
	t := synthEpoch
	var e Event
	for i := range n {
		c := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), uint16(1024+i%60000))
		for _, s := range [...]struct {
			client   bool
			f        segment.Flags
			seq, ack uint32
		}{{true, S, 1000, 0}, {false, S | A, 5000, 1001}, {true, A, 1001, 5001}, {true, F | A, 1001, 5001}, {false, F | A, 5001, 1002}, {true, A, 1002, 5002}} {
			e.Seg = segment.Segment{Flags: s.f, Seq: segment.Seq(s.seq), Ack: segment.Seq(s.ack), Window: 65535, WindowScale: -1}
			e.Seg.Src, e.Seg.Dst = c, server
			if !s.client {
				e.Seg.Src, e.Seg.Dst = server, c
			}
			t += int64(time.Microsecond)
			e.Time = t
			a.Add(&e)
		}
	}
}

// TestMillionClosedTuples measures the state of 1M distinct closed tuples,
// all still held (DEFINITIONS.md, *Memory*). It takes a while and much
// memory, so it runs only with CLOSEDUEL_MEMORY=1:
//
//	CLOSEDUEL_MEMORY=1 go test ./analysis -run TestMillionClosedTuples -v
func TestMillionClosedTuples(t *testing.T) {
	if os.Getenv("CLOSEDUEL_MEMORY") == "" {
		t.Skip("skipped: set CLOSEDUEL_MEMORY=1 to measure 1M closed tuples")
	}
	const n = 1_000_000
	runtime.GC()
	before := vmHWM()
	a := NewAnalyzer(Config{})
	start := time.Now()
	closedTuples(a, n)
	took := time.Since(start)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	peak := vmHWM()
	if a.Live() != n {
		t.Fatalf("%d tuples held, want %d", a.Live(), n)
	}
	t.Logf("%d closed tuples held: heap in use %d MB (%d B per tuple), peak RSS %d MB (%d MB before), %v",
		n, ms.HeapInuse>>20, ms.HeapInuse/n, peak>>20, before>>20, took.Round(time.Millisecond))
	// The documented bound: 2 KB per tuple held, heap and peak RSS.
	if ms.HeapInuse > 2048*n || peak-before > 2048*n {
		t.Errorf("heap %d MB, peak RSS growth %d MB: over the documented 2 KB per tuple", ms.HeapInuse>>20, (peak-before)>>20)
	}
	r := a.Finish()
	if r.Totals.Connections != n || r.Totals.CleanCloses != n || r.Totals.EvictedTuples != 0 {
		t.Errorf("connections %d clean %d evicted %d, want %d %d 0", r.Totals.Connections, r.Totals.CleanCloses, r.Totals.EvictedTuples, n, n)
	}
}

// TestEvictionsCountedAndReported: past MaxTuples held, the least recently
// active tuple is forgotten early, counted and said.
func TestEvictionsCountedAndReported(t *testing.T) {
	a := NewAnalyzer(Config{MaxTuples: 1000})
	closedTuples(a, 3000)
	if a.Live() != 1000 {
		t.Errorf("%d tuples held, want the cap 1000", a.Live())
	}
	r := a.Finish()
	if r.Totals.Connections != 3000 || r.Totals.EvictedTuples != 2000 || r.Settings.MaxTuples != 1000 {
		t.Errorf("connections %d evicted %d max %d, want 3000 2000 1000", r.Totals.Connections, r.Totals.EvictedTuples, r.Settings.MaxTuples)
	}
	var b strings.Builder
	if err := WriteText(&b, r, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "2000 tuples forgotten early") {
		t.Errorf("the text report does not say the evictions:\n%s", b.String())
	}
}

// TestTimeWaitPerStack: how long the holder keeps TIME_WAIT is its
// stack's (Config.Stack, Config.TimeWait): the lab's Linux device holds the
// tuple 60 s, so each next SYN a second later reuses it; with a TIME_WAIT
// of half a second none does.
func TestTimeWaitPerStack(t *testing.T) {
	device := netip.MustParseAddr("192.168.100.99")
	stacks := func(a netip.AddrPort) tcpstate.Stack {
		if a.Addr() == device {
			return tcpstate.Linux
		}
		return tcpstate.RFC9293
	}
	for _, tc := range []struct {
		timeWait time.Duration
		reuses   int
	}{{0, 3}, {500 * time.Millisecond, 0}} {
		cfg := Config{Stack: stacks}
		cfg.TimeWait[tcpstate.Linux] = tc.timeWait
		r, err := Analyze(context.Background(), cfg, []string{"testdata/linux-port-reuse/capture.pcapng"})
		if err != nil {
			t.Fatal(err)
		}
		if r.Totals.TimeWaitReuses != tc.reuses || r.Totals.Connections != 4 {
			t.Errorf("Linux TIME_WAIT %v: %d reuses of %d connections, want %d of 4", tc.timeWait, r.Totals.TimeWaitReuses, r.Totals.Connections, tc.reuses)
		}
	}
}
