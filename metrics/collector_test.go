package metrics

import (
	"bytes"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/closeduel/closeduel/internal/roottest"
	"github.com/closeduel/closeduel/mitigate"
	"github.com/closeduel/closeduel/nfq"
	"github.com/closeduel/closeduel/rules"
	"github.com/closeduel/closeduel/segment"
	"github.com/closeduel/closeduel/tcpstate"
	"github.com/closeduel/closeduel/verdictlog"
)

// testSources are fixed figures for every source.
func testSources(t *testing.T) Sources {
	tr := &tcpstate.Stats{}
	tr.Conns.Store(3)
	tr.Created.Store(10)
	tr.Evicted.Store(2)
	sw := &Switches{}
	sw.Switched("rule", "drop-final-ack", "off")
	sw.Switched("rule", "drop-final-ack", "on")
	sw.Switched("rule", "drop-final-ack", "off")
	sw.Switched("mitigation", "ack-fin", "on")
	live := NewLive(4, analysisConfig())
	return Sources{
		Engine: func() nfq.Snapshot {
			return nfq.Snapshot{Packets: 100, Accepted: 97, Dropped: 3, Held: 5, Released: 4, HeldNow: 1,
				KernelQueueDropped: 7, NonTCP: 2, ByAction: map[string]uint64{"pass": 95, "drop": 3, "delay": 2}}
		},
		Rules: func() []rules.RuleStatus {
			return []rules.RuleStatus{{Name: "drop-final-ack", Enabled: false, Hits: 3, Action: "drop"}}
		},
		Tracker:     func() *tcpstate.Stats { return tr },
		Log:         func() verdictlog.Stats { return verdictlog.Stats{Recorded: 100, Lost: 1} },
		Live:        live,
		Switches:    sw,
		Version:     "v-test",
		Mitigations: func() mitigate.Set { return mitigate.Set(0).With(mitigate.FinalAckRepair, true) },
		MitigationStats: func() *mitigate.Stats {
			st := &mitigate.Stats{}
			st.Repaired.Store(4)
			return st
		},
	}
}

// scrape serves the sources and returns one scrape of /metrics.
func scrape(t *testing.T, src Sources) string {
	t.Helper()
	srv, err := Serve("127.0.0.1:0", NewRegistry(NewCollector(src)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	}()
	resp, err := http.Get("http://" + srv.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	return string(body)
}

func TestMetricsValues(t *testing.T) {
	body := scrape(t, testSources(t))
	for _, want := range []string{
		`closeduel_build_info{version="v-test"} 1`,
		`closeduel_packets_total 100`,
		`closeduel_verdicts_total{verdict="accept"} 97`,
		`closeduel_verdicts_total{verdict="drop"} 3`,
		`closeduel_actions_total{action="delay"} 2`,
		`closeduel_rule_decisions_total{action="drop",rule="drop-final-ack"} 3`,
		`closeduel_rule_enabled{action="drop",rule="drop-final-ack"} 0`,
		`closeduel_held_packets_total 5`,
		`closeduel_held_packets 1`,
		`closeduel_kernel_queue_dropped_total{cause="queue_full"} 7`,
		`closeduel_packets_unparsed_total{reason="non_tcp"} 2`,
		`closeduel_log_records_lost_total 1`,
		`closeduel_tracked_connections 3`,
		`closeduel_tracker_evictions_total 2`,
		`closeduel_duels_total 0`,
		`closeduel_switches_total{kind="rule",name="drop-final-ack",state="off"} 2`,
		`closeduel_switches_total{kind="rule",name="drop-final-ack",state="on"} 1`,
		`closeduel_switches_total{kind="mitigation",name="ack-fin",state="on"} 1`,
		`closeduel_mitigation_enabled{mitigation="final-ack-repair"} 1`,
		`closeduel_mitigation_enabled{mitigation="timewait-guard"} 0`,
		`closeduel_mitigation_actions_total{action="repaired",mitigation="final-ack-repair"} 4`,
		`closeduel_mitigation_actions_total{action="moved",mitigation="timewait-guard"} 0`,
		`go_goroutines `,
	} {
		if !strings.Contains(body, want+"\n") && !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}

// TestMetricsLint checks names, units and help by Prometheus conventions,
// with client_golang's linter and with promtool check metrics (the
// reference; required under CI, where make test installs it).
func TestMetricsLint(t *testing.T) {
	body := scrape(t, testSources(t))
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	roottest.RequireTools(t, "promtool")
	promtool, _ := exec.LookPath("promtool")
	check := func(text string) (string, error) {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(text)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return strings.TrimSpace(out.String()), err
	}
	// The reference must be able to fail: a counter without _total.
	if out, err := check("# HELP closeduel_packets p\n# TYPE closeduel_packets counter\ncloseduel_packets 1\n"); err == nil || !strings.Contains(out, "_total") {
		t.Fatalf("promtool passed a counter without _total (%v): %s", err, out)
	}
	if out, err := check(body); err != nil || out != "" {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestLiveFeedsTheAnalyzerOffThePacketPath: Record copies into the ring,
// allocates nothing, counts what finds the ring full, and Drain feeds the
// Analyzer.
func TestLiveFeedsTheAnalyzerOffThePacketPath(t *testing.T) {
	l := NewLive(2, analysisConfig())
	ev := nfq.Event{Kind: nfq.EventVerdict, TCP: true, Left: time.Unix(1, 0), Verdict: nfq.Accept}
	ev.Seg.Src = mustAP("10.0.0.1:40000")
	ev.Seg.Dst = mustAP("10.0.0.2:80")
	ev.Seg.Flags = segment.SYN
	l.Record(&ev)
	l.Record(&ev)
	l.Record(&ev) // ring full
	if l.Lost() != 1 {
		t.Fatalf("lost %d, want 1", l.Lost())
	}
	l.Drain()
	if c := l.Counts(); c.Segments != 2 || c.Connections != 1 {
		t.Fatalf("live counts %+v, want 2 segments of 1 connection", c)
	}
	if a := testing.AllocsPerRun(100, func() { l.Record(&ev); l.Drain() }); a != 0 {
		t.Errorf("Record+Drain allocate %v per event", a)
	}
}

// benchEvent is a TCP event like the engine's.
func benchEvent() *nfq.Event {
	ev := &nfq.Event{Kind: nfq.EventVerdict, TCP: true, Verdict: nfq.Accept}
	ev.Seg.Src = mustAP("10.0.0.1:40000")
	ev.Seg.Dst = mustAP("10.0.0.2:80")
	ev.Seg.Flags = segment.ACK
	return ev
}

// BenchmarkLiveRecord is the per-packet cost --metrics adds to the
// engine's goroutine: Record into a ring with room.
func BenchmarkLiveRecord(b *testing.B) {
	l := NewLive(b.N+1, analysisConfig())
	ev := benchEvent()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev.Left = time.Unix(1, int64(i)*1000)
		l.Record(ev)
	}
	b.StopTimer()
	if l.Lost() != 0 {
		b.Fatalf("lost %d", l.Lost())
	}
}

// BenchmarkLiveAnalyze is the whole per-packet cost of the live analysis
// (Record and the Analyzer's Add through Drain), which the draining
// goroutine must keep up with to lose nothing.
func BenchmarkLiveAnalyze(b *testing.B) {
	l := NewLive(1024, analysisConfig())
	ev := benchEvent()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev.Left = time.Unix(1, int64(i)*1000)
		ev.Seg.Seq = segment.Seq(i)
		l.Record(ev)
		if i%512 == 511 {
			l.Drain()
		}
	}
	l.Drain()
	b.StopTimer()
	if l.Lost() != 0 {
		b.Fatalf("lost %d", l.Lost())
	}
}
