package analysis

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/closeduel/closeduel/segment"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/gopacket/gopacket/layers"
)

const (
	fA  = segment.ACK
	fFA = segment.FIN | segment.ACK
	fR  = segment.RST
	fRA = segment.RST | segment.ACK
	fPA = segment.PSH | segment.ACK
	fS  = segment.SYN
)

// outcome is the part of a report a scenario asserts.
type outcome struct {
	Connections, Clean, Failed, Duels, DuelSegments int
	Retrans, SYNRetrans, FINRetrans, RSTs, Ignored  int
	TWReuse                                         int
	Close                                           []string // per connection
	Closer                                          []string
	History                                         []string
	Causes                                          []string // per duel
	Turns                                           []int
}

func outcomeOf(r *Report) outcome {
	t := &r.Totals
	o := outcome{
		Connections: t.Connections, Clean: t.CleanCloses, Failed: t.FailedRequests,
		Duels: t.Duels, DuelSegments: t.DuelSegments,
		Retrans: t.Retransmissions, SYNRetrans: t.SYNRetransmissions, FINRetrans: t.FINRetransmissions,
		RSTs: t.RSTs, Ignored: t.IgnoredRSTs, TWReuse: t.TimeWaitReuses,
	}
	for _, c := range r.Connections {
		o.Close = append(o.Close, c.Close.String())
		o.Closer = append(o.Closer, c.Closer.String())
		o.History = append(o.History, c.History)
	}
	for _, d := range r.Duels {
		o.Causes = append(o.Causes, d.Cause.String())
		o.Turns = append(o.Turns, d.Turns)
	}
	return o
}

var scenarios = []struct {
	name  string
	build func(s *synth)
	want  outcome
}{
	{
		name:  "clean close",
		build: func(s *synth) { f := newFlow(40000); s.exchange(f); s.cleanClose(f) },
		want: outcome{Connections: 1, Clean: 1, Close: []string{"fin"}, Closer: []string{"orig"},
			History: []string{"ShADdFfA"}},
	},
	{
		name: "RST ignored: the client keeps retransmitting, the server keeps resetting",
		build: func(s *synth) {
			f := newFlow(40001)
			s.exchange(f)
			s.add(time.Millisecond, f, false, fR, 5201, 0, 0, "")
			for i := range 3 {
				s.add(time.Duration(200<<i)*time.Millisecond, f, true, fPA, 1001, 5001, 100, "")
				s.add(100*time.Microsecond, f, false, fR, 5201, 0, 0, "")
			}
		},
		want: outcome{Connections: 1, Duels: 1, DuelSegments: 6, Retrans: 3, RSTs: 4, Ignored: 3,
			Close: []string{"rst"}, Closer: []string{"resp"}, History: []string{"ShADdrDTrDTrDTr"},
			Causes: []string{CauseAfterRST.String()}, Turns: []int{5}},
	},
	{
		name: "ACK storm after both FINs",
		build: func(s *synth) {
			f := newFlow(40002)
			s.exchange(f)
			s.cleanClose(f)
			for range 3 {
				s.add(10*time.Millisecond, f, false, fA, 5202, 1102, 0, "")
				s.add(10*time.Millisecond, f, true, fA, 1102, 5202, 0, "")
			}
		},
		want: outcome{Connections: 1, Duels: 1, DuelSegments: 6, Close: []string{"fin"}, Closer: []string{"orig"},
			History: []string{"ShADdFfAaAaAaA"}, Causes: []string{CauseAfterFIN.String()}, Turns: []int{5}},
	},
	{
		name: "lost final ACK recovered from TIME_WAIT is no duel",
		build: func(s *synth) {
			f := newFlow(40003)
			s.exchange(f)
			s.cleanClose(f)
			s.add(200*time.Millisecond, f, false, fFA, 5201, 1102, 0, "")
			s.add(100*time.Microsecond, f, true, fA, 1102, 5202, 0, "")
		},
		want: outcome{Connections: 1, Clean: 1, Retrans: 1, FINRetrans: 1, Close: []string{"fin"},
			Closer: []string{"orig"}, History: []string{"ShADdFfAftA"}},
	},
	{
		name: "lost final ACK into a freed socket: FIN then RST, no duel",
		build: func(s *synth) {
			f := newFlow(40004)
			s.exchange(f)
			s.cleanClose(f)
			s.add(200*time.Millisecond, f, false, fFA, 5201, 1102, 0, "")
			s.add(100*time.Microsecond, f, true, fR, 1102, 0, 0, "")
		},
		want: outcome{Connections: 1, Retrans: 1, FINRetrans: 1, RSTs: 1, Close: []string{"fin-rst"},
			Closer: []string{"orig"}, History: []string{"ShADdFfAftR"}},
	},
	{
		name: "SYN to a tuple the server holds in TIME_WAIT",
		build: func(s *synth) {
			f := newFlow(40005)
			s.exchange(f)
			// the server closes first and holds TIME_WAIT
			s.add(100*time.Microsecond, f, false, fFA, 5201, 1101, 0, "")
			s.add(100*time.Microsecond, f, true, fFA, 1101, 5202, 0, "")
			s.add(100*time.Microsecond, f, false, fA, 5202, 1102, 0, "")
			for i := range 3 {
				s.add(time.Duration(1<<i)*time.Second, f, true, fS, 900, 0, 0, "")
				s.add(100*time.Microsecond, f, false, fA, 5202, 1102, 0, "")
				s.add(100*time.Microsecond, f, true, fR, 1102, 0, 0, "")
			}
		},
		want: outcome{Connections: 2, Clean: 1, Failed: 1, Duels: 1, DuelSegments: 9, Retrans: 2, SYNRetrans: 2,
			RSTs: 3, Ignored: 2, TWReuse: 1, Close: []string{"fin", "rst"}, Closer: []string{"resp", "none"},
			History: []string{"ShADdfFa", "SkRSTkRSTkR"}, Causes: []string{CauseHeldTuple.String()}, Turns: []int{6}},
	},
	{
		name: "IPv6: RST ignored",
		build: func(s *synth) {
			f := flow{c: netip.MustParseAddrPort("[fd00::1]:40010"), s: netip.MustParseAddrPort("[fd00::2]:80")}
			s.exchange(f)
			s.add(time.Millisecond, f, false, fR, 5201, 0, 0, "")
			s.add(200*time.Millisecond, f, true, fPA, 1001, 5001, 100, "")
			s.add(100*time.Microsecond, f, false, fR, 5201, 0, 0, "")
		},
		want: outcome{Connections: 1, Duels: 0, Retrans: 1, RSTs: 2, Ignored: 1, Close: []string{"rst"},
			Closer: []string{"resp"}, History: []string{"ShADdrDTr"}},
	},
	{
		name: "refused, half-open and unfinished",
		build: func(s *synth) {
			f := newFlow(40006)
			s.add(time.Millisecond, f, true, fS, 1000, 0, 0, "")
			s.add(100*time.Microsecond, f, false, fRA, 0, 1001, 0, "")
			g := newFlow(40007)
			s.exchange(g)
			s.add(100*time.Microsecond, g, true, fFA, 1101, 5201, 0, "")
			s.add(100*time.Microsecond, g, false, fA, 5201, 1102, 0, "")
			h := newFlow(40008)
			s.exchange(h)
		},
		want: outcome{Connections: 3, Failed: 1, RSTs: 1, Close: []string{"rst", "half-open", "unfinished"},
			Closer: []string{"none", "orig", "none"}, History: []string{"Sr", "ShADdFa", "ShADd"}},
	},
}

func analyzeFiles(t *testing.T, cfg Config, paths ...string) *Report {
	t.Helper()
	r, err := Analyze(context.Background(), cfg, paths)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestScenarios(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			s := newSynth()
			sc.build(s)
			path := tempPath(t, "x.pcap")
			s.writePcap(t, path, layers.LinkTypeEthernet)
			got := outcomeOf(analyzeFiles(t, Config{}, path))
			if diff := cmp.Diff(sc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("outcome (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLinkTypes: the same segments framed as Ethernet, Linux cooked SLL
// and SLL2 and raw IP, in pcap and pcapng, give the same report.
func TestLinkTypes(t *testing.T) {
	s := newSynth()
	scenarios[1].build(s)
	scenarios[5].build(s)
	ref := tempPath(t, "eth.pcap")
	s.writePcap(t, ref, layers.LinkTypeEthernet)
	want := analyzeFiles(t, Config{}, ref)
	strip := cmpopts.IgnoreFields(Report{}, "Inputs")
	for _, link := range []layers.LinkType{layers.LinkTypeRaw, layers.LinkTypeLinuxSLL, layers.LinkTypeLinuxSLL2} {
		t.Run(link.String(), func(t *testing.T) {
			p := tempPath(t, "x.pcap")
			s.writePcap(t, p, link)
			got := analyzeFiles(t, Config{}, p)
			if got.Totals.Segments != len(s.pkts) {
				t.Errorf("segments = %d, want %d", got.Totals.Segments, len(s.pkts))
			}
			if diff := cmp.Diff(want, got, strip); diff != "" {
				t.Errorf("report (-eth +%v):\n%s", link, diff)
			}
		})
	}
	t.Run("pcapng", func(t *testing.T) {
		p := tempPath(t, "x.pcapng")
		s.writePcapng(t, p)
		if diff := cmp.Diff(want, analyzeFiles(t, Config{}, p), strip); diff != "" {
			t.Errorf("report (-pcap +pcapng):\n%s", diff)
		}
	})
}

// dropComment is closeduel's comment on a dropped packet.
const dropComment = "closeduel verdict=drop action=drop rule=lose-ack conn=1 dir=client>device held=0s"
const passComment = "closeduel verdict=accept action=pass rule=- conn=1 dir=device>client held=0s"

// lostAckSynth: closeduel drops the client's final ACK; the server
// retransmits its FIN and the client's TIME_WAIT ACK gets through.
func lostAckSynth() *synth {
	s := newSynth()
	f := newFlow(41000)
	s.exchange(f)
	for i := range s.pkts {
		s.pkts[i].comment = passComment
	}
	s.add(100*time.Microsecond, f, true, fFA, 1101, 5201, 0, passComment)
	s.add(100*time.Microsecond, f, false, fFA, 5201, 1102, 0, passComment)
	s.add(100*time.Microsecond, f, true, fA, 1102, 5202, 0, dropComment)
	s.add(200*time.Millisecond, f, false, fFA, 5201, 1102, 0, passComment)
	s.add(100*time.Microsecond, f, true, fA, 1102, 5202, 0, passComment)
	return s
}

// TestDroppedSegmentsDoNotReachTheReceiver: a dropped final ACK does not
// reach the server (its FIN goes again and the ACK that gets through
// acknowledges it); the connection closed when the client entered
// TIME-WAIT, and the retransmitted FIN with its ACK is one turn, no duel.
func TestDroppedSegmentsDoNotReachTheReceiver(t *testing.T) {
	s := lostAckSynth()
	p := tempPath(t, "run.pcapng")
	s.writePcapng(t, p)
	r := analyzeFiles(t, Config{}, p)
	c := r.Connections[0]
	want := time.Unix(0, s.pkts[len(s.pkts)-4].t).UTC()
	if !c.Closed.Equal(want) {
		t.Errorf("closed at %v, want %v (the server's FIN putting the client in TIME-WAIT)", c.Closed, want)
	}
	if c.History != "ShADdFfAXftA" {
		t.Errorf("history %q, want %q", c.History, "ShADdFfAXftA")
	}
	if r.Totals.Verdicts != len(s.pkts) || r.Totals.Drops != 1 {
		t.Errorf("verdicts %d drops %d, want %d and 1", r.Totals.Verdicts, r.Totals.Drops, len(s.pkts))
	}
	if !c.Clean || r.Totals.Duels != 0 {
		t.Errorf("clean %v duels %d, want a clean close and no duel", c.Clean, r.Totals.Duels)
	}
}

// writeLog writes the synth's segments as a JSON Lines verdict log, the
// verdict taken from each comment.
func (s *synth) writeLog(t testing.TB, path string) {
	t.Helper()
	var b strings.Builder
	b.WriteString(`{"v":1,"kind":"start","t":1,"queue":0,"version":"test"}` + "\n")
	for i, p := range s.pkts {
		verdict := "accept"
		action := "pass"
		rule := ""
		if strings.Contains(p.comment, "verdict=drop") {
			verdict, action, rule = "drop", "drop", "lose-ack"
		}
		line := map[string]any{"v": 1, "kind": "verdict", "t": p.t - 1000, "left": p.t, "id": i + 1,
			"src": p.seg.Src.Addr().String(), "dst": p.seg.Dst.Addr().String(),
			"sport": p.seg.Src.Port(), "dport": p.seg.Dst.Port(), "flags": p.seg.Flags.String(),
			"seq": uint32(p.seg.Seq), "ack": uint32(p.seg.Ack), "win": p.seg.Window, "len": p.seg.PayloadLen,
			"action": action, "verdict": verdict, "future_field": true}
		if rule != "" {
			line["rule"] = rule
		}
		j, _ := json.Marshal(line)
		b.Write(j)
		b.WriteByte('\n')
	}
	b.WriteString(`{"v":1,"kind":"summary","t":2,"verdicts":9}` + "\n")
	b.WriteString(`{"v":1,"kind":"a-kind-from-the-future","t":3}` + "\n")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestVerdictLogAlone: a JSON Lines log alone gives the same report as
// closeduel's pcapng of the same run.
func TestVerdictLogAlone(t *testing.T) {
	s := lostAckSynth()
	ng, log := tempPath(t, "run.pcapng"), tempPath(t, "verdicts.jsonl")
	s.writePcapng(t, ng)
	s.writeLog(t, log)
	want := analyzeFiles(t, Config{}, ng)
	got := analyzeFiles(t, Config{}, log)
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Report{}, "Inputs")); diff != "" {
		t.Errorf("report (-pcapng +jsonl):\n%s", diff)
	}
}

// TestCaptureWithLog: with a capture and a log, the capture supplies the
// segments and the log the verdicts, each counted once.
func TestCaptureWithLog(t *testing.T) {
	s := lostAckSynth()
	ng, log := tempPath(t, "run.pcapng"), tempPath(t, "verdicts.jsonl")
	s.writePcapng(t, ng)
	s.writeLog(t, log)
	r := analyzeFiles(t, Config{}, ng, log)
	got := []any{r.Totals.Segments, r.Totals.Verdicts, r.Totals.Drops, r.Inputs[0].Role, r.Inputs[1].Role, r.Connections[0].History}
	want := []any{len(s.pkts), len(s.pkts), 1, "packets", "verdicts", "ShADdFfAXftA"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestDuelVerdicts: the verdicts closeduel gave on a duel's segments are
// the duel's.
func TestDuelVerdicts(t *testing.T) {
	s := newSynth()
	scenarios[1].build(s)
	for i := range s.pkts {
		if s.pkts[i].seg.Flags&segment.RST != 0 && i > 5 {
			s.pkts[i].comment = "closeduel injected action=inject rule=reset-back"
		}
	}
	p := tempPath(t, "run.pcapng")
	s.writePcapng(t, p)
	r := analyzeFiles(t, Config{}, p)
	if len(r.Duels) != 1 {
		t.Fatalf("%d duels, want 1", len(r.Duels))
	}
	want := VerdictCounts{Total: 3, Injected: 3, ByRule: map[string]int{"reset-back": 3}, ByAction: map[string]int{"inject": 3}}
	if diff := cmp.Diff(want, r.Duels[0].Verdicts); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}
}

// TestAfterWorkload: with run metadata, a duel that outlives the workload
// says so and by how much.
func TestAfterWorkload(t *testing.T) {
	s := newSynth()
	scenarios[1].build(s)
	p := tempPath(t, "x.pcap")
	s.writePcap(t, p, layers.LinkTypeEthernet)
	dir := t.TempDir()
	end := time.Unix(0, synthEpoch).Add(500 * time.Millisecond).UTC()
	yaml := fmt.Sprintf("experiment: rst-storm\nworkload_start: %d\nworkload_end: %s\nother: [1, 2]\n", synthEpoch, end.Format(time.RFC3339Nano))
	if err := os.WriteFile(dir+"/run.yaml", []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	run, err := ReadRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	if run.Experiment != "rst-storm" || !run.WorkloadEnd.Equal(end) || run.WorkloadStart.UnixNano() != synthEpoch {
		t.Fatalf("run = %+v", run)
	}
	r := analyzeFiles(t, Config{Run: run}, p)
	d := r.Duels[0]
	if d.AfterWorkload == nil || !*d.AfterWorkload || r.Totals.DuelsAfterWorkload != 1 {
		t.Fatalf("after workload %v, total %d; want true, 1", d.AfterWorkload, r.Totals.DuelsAfterWorkload)
	}
	if want := secondsOf(d.End.Sub(end).Nanoseconds()); d.AfterWorkloadSeconds != want {
		t.Errorf("after workload %vs, want %vs", d.AfterWorkloadSeconds, want)
	}
}

// TestBadInput: a file that is no capture is refused with its name; a
// truncated capture and bad log lines are warnings and lose nothing
// before them.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	junk := dir + "/notes.txt"
	os.WriteFile(junk, []byte("hello\n"), 0o644)
	if _, err := Analyze(context.Background(), Config{}, []string{junk}); err == nil || !strings.Contains(err.Error(), "notes.txt: not a pcap, pcapng or JSON Lines file") {
		t.Errorf("junk: err = %v", err)
	}
	if _, err := Analyze(context.Background(), Config{}, []string{dir + "/missing.pcap"}); err == nil || !strings.Contains(err.Error(), "missing.pcap") {
		t.Errorf("missing: err = %v", err)
	}

	s := newSynth()
	scenarios[0].build(s)
	p := dir + "/cut.pcap"
	s.writePcap(t, p, layers.LinkTypeEthernet)
	b, _ := os.ReadFile(p)
	os.WriteFile(p, b[:len(b)-10], 0o644)
	r := analyzeFiles(t, Config{}, p)
	if r.Totals.Segments != len(s.pkts)-1 || len(r.Inputs[0].Warnings) != 1 || !strings.Contains(r.Inputs[0].Warnings[0], "truncated") {
		t.Errorf("truncated: segments %d (want %d), warnings %q", r.Totals.Segments, len(s.pkts)-1, r.Inputs[0].Warnings)
	}

	log := dir + "/v.jsonl"
	s.writeLog(t, log)
	lb, _ := os.ReadFile(log)
	lines := strings.SplitAfter(string(lb), "\n")
	lines = append(lines[:3], append([]string{"{not json\n", `{"v":1,"kind":"verdict","src":"x"}` + "\n"}, lines[3:]...)...)
	os.WriteFile(log, []byte(strings.Join(lines, "")), 0o644)
	r = analyzeFiles(t, Config{}, log)
	if r.Totals.Segments != len(s.pkts) || r.Inputs[0].Skipped != 2 || len(r.Inputs[0].Warnings) != 2 {
		t.Errorf("log: segments %d (want %d), skipped %d, warnings %q", r.Totals.Segments, len(s.pkts), r.Inputs[0].Skipped, r.Inputs[0].Warnings)
	}
}

// TestMemoryFollowsLiveConnections: finished connections leave the
// analyzer's state.
func TestMemoryFollowsLiveConnections(t *testing.T) {
	s := newSynth()
	for i := range 500 {
		f := newFlow(uint16(20000 + i))
		s.exchange(f)
		s.cleanClose(f)
		s.t += int64(100 * time.Millisecond)
	}
	a := NewAnalyzer(Config{MSL: time.Second})
	maxLive := 0
	for i := range s.pkts {
		e := Event{Time: s.pkts[i].t, Seg: s.pkts[i].seg}
		a.Add(&e)
		maxLive = max(maxLive, a.Live())
	}
	// A closed connection is remembered until its TIME-WAIT (2·MSL) is
	// over and 2·MSL after its last segment: 2 s / 100 ms + 1.
	if maxLive > 21 {
		t.Errorf("up to %d tuples live, want at most 21", maxLive)
	}
	if r := a.Finish(); r.Totals.Connections != 500 || r.Totals.CleanCloses != 500 {
		t.Errorf("connections %d clean %d, want 500 500", r.Totals.Connections, r.Totals.CleanCloses)
	}
}

// TestNoAllocationsPerSegment: reading and analysing the segments of a
// live connection allocates nothing.
func TestNoAllocationsPerSegment(t *testing.T) {
	s := newSynth()
	f := newFlow(42000)
	s.exchange(f)
	for i := range 2000 {
		s.add(time.Microsecond, f, true, fPA, uint32(1101+i*10), 5201, 10, "")
	}
	p := tempPath(t, "x.pcap")
	s.writePcap(t, p, layers.LinkTypeEthernet)
	src, err := openSource(p, 0, FormatPcap, openOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.close()
	a := NewAnalyzer(Config{})
	var ev Event
	for range 10 {
		src.next(&ev)
		a.Add(&ev)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if err := src.next(&ev); err != nil {
			t.Fatal(err)
		}
		a.Add(&ev)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per segment, want 0", allocs)
	}
}
