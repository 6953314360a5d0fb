package analysis

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/gopacket/gopacket/layers"
)

// inputEvents returns the events of the inputs in the order Analyze feeds
// them to its Analyzer.
func inputEvents(t *testing.T, paths []string) []Event {
	t.Helper()
	var captures, logs int
	formats := make([]Format, len(paths))
	for i, p := range paths {
		f, err := fileFormat(p)
		if err != nil {
			t.Fatal(err)
		}
		formats[i] = f
		if f == FormatJSONL {
			logs++
		} else {
			captures++
		}
	}
	opt := openOptions{verdictsOnly: captures > 0, countComments: logs == 0}
	heads := make([]Event, len(paths))
	var sources []source
	for i, p := range paths {
		s, err := openSource(p, i, formats[i], opt)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.close() })
		sources = append(sources, s)
	}
	live := make([]bool, len(sources))
	next := func(i int) {
		err := sources[i].next(&heads[i])
		live[i] = err == nil
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
	}
	for i := range sources {
		next(i)
	}
	var out []Event
	for {
		best := -1
		for i := range heads {
			if live[i] && (best < 0 || heads[i].Time < heads[best].Time) {
				best = i
			}
		}
		if best < 0 {
			return out
		}
		out = append(out, heads[best])
		next(best)
	}
}

// liveOf is what LiveCounts must say once every event is in.
func liveOf(r *Report) LiveCounts {
	t := &r.Totals
	return LiveCounts{Segments: t.Segments, Connections: t.Connections, Duels: t.Duels,
		IgnoredRSTs: t.IgnoredRSTs, TimeWaitReuses: t.TimeWaitReuses}
}

// TestLiveCountsAgreeWithTheReport feeds every known-answer input event by
// event: the live counts never go down (but ongoing duels), never count
// more ongoing duels than duels, and once every event is in they are the
// report's totals; the report is Analyze's.
func TestLiveCountsAgreeWithTheReport(t *testing.T) {
	for _, gc := range goldenCases(t) {
		t.Run(gc.name, func(t *testing.T) {
			events := inputEvents(t, gc.paths)
			a := NewAnalyzer(Config{Run: gc.run})
			var prev LiveCounts
			for i := range events {
				a.Add(&events[i])
				lc := a.LiveCounts()
				if lc.Segments < prev.Segments || lc.Connections < prev.Connections || lc.Duels < prev.Duels ||
					lc.IgnoredRSTs < prev.IgnoredRSTs || lc.TimeWaitReuses < prev.TimeWaitReuses || lc.OngoingDuels > lc.Duels {
					t.Fatalf("event %d: live counts went from %+v to %+v", i, prev, lc)
				}
				prev = lc
			}
			before := a.LiveCounts()
			r := a.Finish()
			want := liveOf(r)
			if diff := cmp.Diff(want, before, cmpopts.IgnoreFields(LiveCounts{}, "OngoingDuels")); diff != "" {
				t.Errorf("live counts after the last event (-report +live):\n%s", diff)
			}
			if diff := cmp.Diff(want, a.LiveCounts()); diff != "" {
				t.Errorf("live counts after Finish (-report +live):\n%s", diff)
			}
			full := analyzeFiles(t, Config{Run: gc.run}, gc.paths...)
			if diff := cmp.Diff(full, r, cmpopts.IgnoreFields(Report{}, "Inputs"), cmpopts.IgnoreFields(Totals{}, "Skipped")); diff != "" {
				t.Errorf("report of the events fed one by one (-Analyze +Analyzer):\n%s", diff)
			}
		})
	}
}

// TestLiveCountsWhileDuelling follows the TIME_WAIT-reuse scenario
// segment by segment.
func TestLiveCountsWhileDuelling(t *testing.T) {
	s := newSynth()
	scenarios[5].build(s) // SYN to a tuple the server holds in TIME_WAIT
	if len(s.pkts) != 17 {
		t.Fatalf("the scenario has %d segments, want 17", len(s.pkts))
	}
	// after[i] is what the counts must be once s.pkts[:i] are in.
	after := map[int]LiveCounts{
		0:  {},
		8:  {Segments: 8, Connections: 1},
		9:  {Segments: 9, Connections: 2, TimeWaitReuses: 1}, // the SYN on the held tuple
		10: {Segments: 10, Connections: 2, TimeWaitReuses: 1},
		11: {Segments: 11, Connections: 2, TimeWaitReuses: 1, Duels: 1, OngoingDuels: 1}, // SYN, ACK, RST: two turns
		14: {Segments: 14, Connections: 2, TimeWaitReuses: 1, Duels: 1, OngoingDuels: 1, IgnoredRSTs: 1},
		17: {Segments: 17, Connections: 2, TimeWaitReuses: 1, Duels: 1, OngoingDuels: 1, IgnoredRSTs: 2},
	}
	a := NewAnalyzer(Config{})
	for i := 0; i <= len(s.pkts); i++ {
		if want, ok := after[i]; ok {
			if diff := cmp.Diff(want, a.LiveCounts()); diff != "" {
				t.Errorf("after %d segments (-want +got):\n%s", i, diff)
			}
		}
		if i < len(s.pkts) {
			a.Add(&Event{Time: s.pkts[i].t, Seg: s.pkts[i].seg})
		}
	}
	r := a.Finish()
	want := LiveCounts{Segments: 17, Connections: 2, TimeWaitReuses: 1, Duels: 1, IgnoredRSTs: 2}
	if diff := cmp.Diff(want, a.LiveCounts()); diff != "" {
		t.Errorf("after Finish (-want +got):\n%s", diff)
	}
	if !r.Duels[0].Ongoing {
		t.Errorf("the duel should be reported ongoing at the end of the inputs")
	}

	// A duel that ends (a clean handshake on its tuple) is no longer
	// ongoing but still counted.
	s2 := newSynth()
	scenarios[5].build(s2)
	s2.t += int64(time.Second)
	s2.exchange(newFlow(40005))
	a = NewAnalyzer(Config{})
	for i := range s2.pkts {
		a.Add(&Event{Time: s2.pkts[i].t, Seg: s2.pkts[i].seg})
	}
	want = LiveCounts{Segments: 22, Connections: 3, TimeWaitReuses: 1, Duels: 1, IgnoredRSTs: 2}
	if diff := cmp.Diff(want, a.LiveCounts()); diff != "" {
		t.Errorf("after a clean handshake on the tuple (-want +got):\n%s", diff)
	}
}

// TestLiveCountsAllocatesNothing: a display may read the counts as often
// as it likes.
func TestLiveCountsAllocatesNothing(t *testing.T) {
	s := newSynth()
	scenarios[5].build(s)
	a := NewAnalyzer(Config{})
	for i := range s.pkts {
		a.Add(&Event{Time: s.pkts[i].t, Seg: s.pkts[i].seg})
	}
	var lc LiveCounts
	if allocs := testing.AllocsPerRun(1000, func() { lc = a.LiveCounts() }); allocs != 0 {
		t.Errorf("LiveCounts allocates %v times per call, want 0", allocs)
	}
	if lc.Duels != 1 {
		t.Errorf("duels %d, want 1", lc.Duels)
	}
}

// TestSetRunLate: run metadata given while the events come (at any
// point, also after every duel ended) yields the report Config.Run
// yields.
func TestSetRunLate(t *testing.T) {
	run, err := ReadRun("testdata/lwip-port-reuse")
	if err != nil {
		t.Fatal(err)
	}
	// The roles' stacks are the tracker's from the start; a run given
	// late brings its workload times only.
	run.Stacks = nil
	paths, err := RunInputs(run.Dir)
	if err != nil {
		t.Fatal(err)
	}
	events := inputEvents(t, paths)
	want := NewAnalyzer(Config{Run: run})
	for i := range events {
		want.Add(&events[i])
	}
	wr := want.Finish()
	if wr.Totals.DuelsAfterWorkload != 1 || len(wr.Duels) != 3 {
		t.Fatalf("the known answer has %d duels, %d after the workload; want 3 and 1", len(wr.Duels), wr.Totals.DuelsAfterWorkload)
	}
	for _, at := range []int{0, len(events) / 2, len(events)} {
		a := NewAnalyzer(Config{})
		// A wrong run first: SetRun replaces it.
		a.SetRun(&RunInfo{WorkloadEnd: time.Unix(0, 1)})
		for i := range events {
			if i == at {
				a.SetRun(run)
			}
			a.Add(&events[i])
		}
		if at == len(events) {
			a.SetRun(run)
		}
		if diff := cmp.Diff(wr, a.Finish()); diff != "" {
			t.Errorf("SetRun before event %d (-Config.Run +SetRun):\n%s", at, diff)
		}
	}
}

// TestAnalyzeUsesTheLiveDefinitions guards the differential above: a
// synthetic capture analysed from a file and event by event agree.
func TestAnalyzeUsesTheLiveDefinitions(t *testing.T) {
	s := newSynth()
	for i := range scenarios {
		scenarios[i].build(s)
	}
	p := tempPath(t, "all.pcap")
	s.writePcap(t, p, layers.LinkTypeEthernet)
	r, err := Analyze(context.Background(), Config{}, []string{p})
	if err != nil {
		t.Fatal(err)
	}
	a := NewAnalyzer(Config{})
	for i := range s.pkts {
		a.Add(&Event{Time: s.pkts[i].t, Seg: s.pkts[i].seg})
	}
	lc := a.LiveCounts()
	lc.OngoingDuels = 0
	if diff := cmp.Diff(liveOf(r), lc); diff != "" {
		t.Errorf("(-Analyze +LiveCounts):\n%s", diff)
	}
	if r.Totals.Duels < 3 || r.Totals.IgnoredRSTs < 5 || r.Totals.TimeWaitReuses != 1 {
		t.Errorf("the scenarios should make duels, ignored RSTs and a reuse: %+v", liveOf(r))
	}
}
