package lab

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/gopacket/gopacket/layers"

	"github.com/closeduel/closeduel/analysis"
	"github.com/closeduel/closeduel/nfq"
	"github.com/closeduel/closeduel/segment"
	"github.com/closeduel/closeduel/verdictlog"
)

var (
	testClient = netip.MustParseAddrPort("192.168.100.1:40000")
	testDevice = netip.MustParseAddrPort("192.168.100.99:80")
)

// step is one segment of a scripted exchange: at ms after the start, from
// the client (c) or the device (d), with the engine's verdict on it.
type step struct {
	ms       float64
	fromDev  bool
	flags    segment.Flags
	seq, ack uint32
	payload  int
	drop     string // the rule that dropped it ("" passes it)
}

func c(ms float64, f segment.Flags, seq, ack uint32, payload int) step {
	return step{ms: ms, flags: f, seq: seq, ack: ack, payload: payload}
}

func d(ms float64, f segment.Flags, seq, ack uint32, payload int) step {
	return step{ms: ms, fromDev: true, flags: f, seq: seq, ack: ack, payload: payload}
}

// dropped marks a step as dropped by rule.
func dropped(s step, rule string) step { s.drop = rule; return s }

const (
	syn    = segment.SYN
	synack = segment.SYN | segment.ACK
	ack    = segment.ACK
	psh    = segment.PSH | segment.ACK
	finack = segment.FIN | segment.ACK
	rst    = segment.RST
)

// handshake and response of a connection whose client ISN is isn and
// device ISN 5000, with a 78-octet request and 119-octet response.
func exchange(at float64, isn uint32) []step {
	return []step{
		c(at, syn, isn, 0, 0),
		d(at+0.05, synack, 5000, isn+1, 0),
		c(at+0.1, ack, isn+1, 5001, 0),
		c(at+0.2, psh, isn+1, 5001, 78),
		d(at+0.3, psh, 5001, isn+79, 119),
		c(at+0.4, ack, isn+79, 5120, 0),
	}
}

// deviceClose: the device closes first, the client acks with its FIN.
func deviceClose(at float64) []step {
	return []step{
		d(at, finack, 5120, 1079, 0),
		c(at+0.1, finack, 1079, 5121, 0),
		d(at+0.2, ack, 5121, 1080, 0),
	}
}

func script(parts ...[]step) []step {
	var out []step
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

var testOrigin = time.Unix(1_800_000_000, 0)

func at(ms float64) time.Time { return testOrigin.Add(time.Duration(ms * float64(time.Millisecond))) }

func (st *step) segment() segment.Segment {
	seg := segment.Segment{Src: testClient, Dst: testDevice, Flags: st.flags, Window: 65535, WindowScale: -1,
		Seq: segment.Seq(st.seq), Ack: segment.Seq(st.ack), PayloadLen: st.payload}
	if st.fromDev {
		seg.Src, seg.Dst = testDevice, testClient
	}
	return seg
}

// figures is what a test asserts of a Summary: the analysis' figures and
// the lab's own.
type figures struct {
	Connections, Clean, RSTs, Ignored, TWReuses int
	Duels, DuelsAfterWorkload, FINRetrans       int
	Closes                                      map[string]int
	AfterStop                                   int
	LastAfterStop                               time.Duration
}

func figuresOf(r *analysis.Report, s *Summary) figures {
	t := &r.Totals
	f := figures{Connections: t.Connections, Clean: t.CleanCloses, RSTs: t.RSTs, Ignored: t.IgnoredRSTs,
		TWReuses: t.TimeWaitReuses, Duels: t.Duels, DuelsAfterWorkload: t.DuelsAfterWorkload,
		FINRetrans: t.FINRetransmissions, Closes: map[string]int{}}
	for k, n := range t.Closes {
		if n > 0 {
			f.Closes[k] = n
		}
	}
	f.AfterStop, f.LastAfterStop = s.AfterStop()
	return f
}

func TestSummary(t *testing.T) {
	tests := []struct {
		name   string
		steps  []step
		stopMs float64 // 0: the client never stopped
		want   figures
	}{
		{
			name:  "device closes first",
			steps: script(exchange(0, 1000), deviceClose(0.5)),
			want:  figures{Connections: 1, Clean: 1, Closes: map[string]int{"fin": 1}},
		},
		{
			name: "FINs cross",
			steps: script(exchange(0, 1000), []step{
				c(0.45, finack, 1079, 5120, 0),
				d(0.5, finack, 5120, 1079, 0),
				c(0.6, ack, 1080, 5121, 0),
				d(0.7, ack, 5121, 1080, 0),
			}),
			want: figures{Connections: 1, Clean: 1, Closes: map[string]int{"fin": 1}},
		},
		{
			name: "device resets instead of closing",
			steps: script(exchange(0, 1000), []step{
				d(0.5, rst|ack, 5120, 1079, 0),
			}),
			want: figures{Connections: 1, RSTs: 1, Closes: map[string]int{"rst": 1}},
		},
		{
			// The device holds the old connection in TIME_WAIT: it answers
			// the new SYN with an ACK of the old one, ignores the client's
			// RST, and the client's SYN retransmissions keep it going
			// after the client stopped.
			name: "time-wait reuse duel",
			steps: script(exchange(0, 1000), deviceClose(0.5), []step{
				c(1000, syn, 90000, 0, 0),
				d(1000.05, ack, 5121, 1080, 0),
				c(1000.1, rst, 1080, 0, 0),
				c(2000, syn, 90000, 0, 0),
				d(2000.05, ack, 5121, 1080, 0),
				c(2000.1, rst, 1080, 0, 0),
				c(3000, syn, 90000, 0, 0),
				d(3000.05, ack, 5121, 1080, 0),
				c(3000.1, rst, 1080, 0, 0),
			}),
			stopMs: 1500,
			want: figures{Connections: 2, Clean: 1, RSTs: 3, Ignored: 2, TWReuses: 1, Duels: 1, DuelsAfterWorkload: 1,
				Closes: map[string]int{"fin": 1, "rst": 1}, AfterStop: 6, LastAfterStop: 1500100 * time.Microsecond},
		},
		{
			// A Linux device in TIME_WAIT takes the new SYN: a new
			// connection that reuses the tuple (a TIME_WAIT reuse by the
			// tracker's one definition), no duel.
			name:   "time-wait reuse accepted",
			steps:  script(exchange(0, 1000), deviceClose(0.5), exchange(1000, 90000)),
			stopMs: 1000,
			want: figures{Connections: 2, Clean: 1, Closes: map[string]int{"fin": 1, "unfinished": 1}, TWReuses: 1,
				AfterStop: 5, LastAfterStop: 400 * time.Microsecond},
		},
		{
			// The client's acks of the device's FIN are lost: the device
			// retransmits its FIN, the client's stack has freed the
			// socket and resets: FIN then RST is one turn, no duel.
			name: "lost final ack",
			steps: script(exchange(0, 1000), []step{
				d(0.5, finack, 5120, 1079, 0),
				dropped(c(0.6, finack, 1079, 5121, 0), "drop-final-ack"),
				d(200.5, finack, 5120, 1079, 0),
				c(200.6, rst, 1079, 0, 0),
			}),
			want: figures{Connections: 1, RSTs: 1, FINRetrans: 1, Closes: map[string]int{"fin-rst": 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSummary(testClient.Addr(), testDevice.Addr(), DeviceLwIP)
			if err != nil {
				t.Fatal(err)
			}
			var run *analysis.RunInfo
			if tt.stopMs > 0 {
				s.SetStop(at(tt.stopMs))
				run = &analysis.RunInfo{WorkloadEnd: at(tt.stopMs)}
			}
			for _, st := range tt.steps {
				seg := st.segment()
				var note analysis.Note
				if st.drop != "" {
					note = analysis.Note{Kind: analysis.NoteVerdict, Drop: true, Action: "drop", Rule: st.drop}
				}
				s.AddSegment(at(st.ms), &seg, note)
			}
			live := s.Live()
			r := s.Close(run)
			if diff := cmp.Diff(tt.want, figuresOf(r, s), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("figures (-want +got):\n%s", diff)
			}
			live.OngoingDuels = 0
			want := analysis.LiveCounts{Segments: len(tt.steps), Connections: r.Totals.Connections, Duels: r.Totals.Duels,
				IgnoredRSTs: r.Totals.IgnoredRSTs, TimeWaitReuses: r.Totals.TimeWaitReuses}
			if diff := cmp.Diff(want, live); diff != "" {
				t.Errorf("live counts before the end (-report +live):\n%s", diff)
			}
			// Once closed, later segments change nothing.
			seg := tt.steps[0].segment()
			s.AddSegment(at(99999), &seg, analysis.Note{})
			if got := s.Live(); got.Segments != len(tt.steps) {
				t.Errorf("a segment after Close was counted: %d segments", got.Segments)
			}
		})
	}
}

// TestSummaryFollowsTheBenchOnly: segments between other hosts are left
// out, frames that are no TCP are skipped.
func TestSummaryFollowsTheBenchOnly(t *testing.T) {
	s, err := NewSummary(testClient.Addr(), testDevice.Addr(), DeviceLwIP)
	if err != nil {
		t.Fatal(err)
	}
	other := segment.Segment{Src: netip.MustParseAddrPort("192.168.100.1:40000"), Dst: netip.MustParseAddrPort("192.168.100.7:80"), Flags: syn}
	s.AddSegment(at(0), &other, analysis.Note{})
	st := c(1, syn, 1000, 0, 0)
	s.AddFrame(at(1), ipFrame(t, st.segment(), true))
	s.AddFrame(at(2), []byte{1, 2, 3})
	if got := s.Live(); got.Segments != 1 || got.Connections != 1 {
		t.Errorf("live %+v, want the one bench segment and its connection", got)
	}
}

// ipFrame renders a segment as an IP packet (eth: as an Ethernet frame)
// with its payload and valid checksums.
func ipFrame(t *testing.T, seg segment.Segment, eth bool) []byte {
	t.Helper()
	tmpl := segment.Template{Tuple: seg.Tuple(), Flags: seg.Flags, Seq: seg.Seq, Ack: seg.Ack, Window: seg.Window}
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	b, err := segment.Build(nil, mac, mac, &tmpl)
	if err != nil {
		t.Fatal(err)
	}
	if seg.PayloadLen > 0 {
		b = append(b, make([]byte, seg.PayloadLen)...)
		ip := b[segment.EthernetHeaderLen:]
		binary.BigEndian.PutUint16(ip[2:4], uint16(len(ip)))
		if err := segment.FixChecksums(ip, &segment.Segment{IPHeaderLen: 20, TCPHeaderLen: 20}); err != nil {
			t.Fatal(err)
		}
	}
	if eth {
		return b
	}
	return b[segment.EthernetHeaderLen:]
}

// TestSummaryReadsWhatTheAnalysisReads: the engine's events handed to the
// Summary and to the verdict log give the Summary the very report the
// analysis makes of the log's capture.pcapng and verdicts.jsonl (drops,
// an injected segment and a duel's verdicts included).
func TestSummaryReadsWhatTheAnalysisReads(t *testing.T) {
	steps := script(exchange(0, 1000), []step{
		d(0.5, finack, 5120, 1079, 0),
		dropped(c(0.6, finack, 1079, 5121, 0), "drop-final-ack"),
		d(200.5, finack, 5120, 1079, 0),
		c(200.6, finack, 1079, 5121, 0),
		d(200.7, ack, 5121, 1080, 0),
	}, []step{
		// The device holds TIME_WAIT; the reuse duels, one RST injected.
		c(1000, syn, 90000, 0, 0),
		d(1000.05, ack, 5121, 1080, 0),
		c(1000.1, rst, 1080, 0, 0),
		c(2000, syn, 90000, 0, 0),
		d(2000.05, ack, 5121, 1080, 0),
		c(2000.1, rst, 1080, 0, 0),
	})
	dir := t.TempDir()
	vlog, err := verdictlog.Open(verdictlog.Config{JSONPath: filepath.Join(dir, FileVerdicts), PcapPath: filepath.Join(dir, FileCapture), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSummary(testClient.Addr(), testDevice.Addr(), DeviceLwIP)
	if err != nil {
		t.Fatal(err)
	}
	rec := teeRecorder{vlog, s}
	dec, err := segment.NewDecoder(layers.LinkTypeRaw)
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range steps {
		ip := ipFrame(t, st.segment(), false)
		ev := nfq.Event{Kind: nfq.EventVerdict, Arrived: at(st.ms - 0.01), Left: at(st.ms), PacketID: uint32(i + 1),
			Decision: &nfq.Decision{}, Data: ip, TCP: true}
		if err := dec.Decode(ip, &ev.Seg); err != nil {
			t.Fatal(err)
		}
		if st.drop != "" {
			ev.Verdict, ev.Decision.Rule, ev.Decision.Action = nfq.Drop, st.drop, "drop"
		}
		if i == len(steps)-1 {
			ev.Kind, ev.Decision.Rule = nfq.EventInjected, "reset-back"
		}
		rec.Record(&ev)
	}
	if err := vlog.Close(); err != nil {
		t.Fatal(err)
	}
	got := s.Close(nil)
	paths, err := analysis.RunInputs(dir)
	if err != nil {
		t.Fatal(err)
	}
	want, err := analysis.Analyze(context.Background(), analysis.Config{}, paths)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(analysis.Report{}, "Inputs")); diff != "" {
		t.Errorf("report (-analysis of the files +summary):\n%s", diff)
	}
	tot := got.Totals
	// Both FINs were sent again: the device's, unacknowledged, and the
	// client's, dropped.
	if tot.Verdicts != len(steps)-1 || tot.Drops != 1 || tot.Injected != 1 || tot.FINRetransmissions != 2 || tot.Duels != 1 || tot.TimeWaitReuses != 1 {
		t.Errorf("totals %+v: want %d verdicts, 1 drop, 1 injected, 2 FIN retransmissions, 1 duel, 1 TIME_WAIT reuse", tot, len(steps)-1)
	}
	if len(got.Duels) == 1 {
		v := got.Duels[0].Verdicts
		if v.Injected != 1 || v.ByRule["reset-back"] != 1 || v.ByAction["pass"] != v.Total-1 {
			t.Errorf("duel verdicts %+v: want the injected RST by reset-back and the rest passed", v)
		}
	}
}

func TestNoteOf(t *testing.T) {
	tests := []struct {
		name string
		ev   nfq.Event
		want analysis.Note
	}{
		{"pass by default", nfq.Event{Kind: nfq.EventVerdict, Decision: &nfq.Decision{}},
			analysis.Note{Kind: analysis.NoteVerdict, Action: "pass"}},
		{"drop by a rule", nfq.Event{Kind: nfq.EventVerdict, Verdict: nfq.Drop, Decision: &nfq.Decision{Rule: "r", Action: "drop"}},
			analysis.Note{Kind: analysis.NoteVerdict, Drop: true, Action: "drop", Rule: "r"}},
		{"delayed", nfq.Event{Kind: nfq.EventVerdict, Decision: &nfq.Decision{Rule: "slow", Action: "delay"}},
			analysis.Note{Kind: analysis.NoteVerdict, Action: "delay", Rule: "slow"}},
		{"duplicate", nfq.Event{Kind: nfq.EventDuplicate, Decision: &nfq.Decision{Rule: "twice", Action: "duplicate"}},
			analysis.Note{Kind: analysis.NoteDuplicate, Action: "duplicate", Rule: "twice"}},
		{"injected", nfq.Event{Kind: nfq.EventInjected, Decision: &nfq.Decision{Rule: "rst"}},
			analysis.Note{Kind: analysis.NoteInjected, Action: "inject", Rule: "rst"}},
		{"no decision", nfq.Event{Kind: nfq.EventVerdict}, analysis.Note{Kind: analysis.NoteVerdict, Action: "pass"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, NoteOf(&tt.ev)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestWriteReport(t *testing.T) {
	sched, err := ParseSchedule("3x1s")
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSummary(testClient.Addr(), testDevice.Addr(), DeviceLwIP)
	if err != nil {
		t.Fatal(err)
	}
	s.SetStop(at(1500))
	for _, st := range script(exchange(0, 1000), deviceClose(0.5), []step{
		c(1000, syn, 90000, 0, 0),
		d(1000.05, ack, 5121, 1080, 0),
		c(1000.1, rst, 1080, 0, 0),
		c(2000, syn, 90000, 0, 0),
		d(2000.05, ack, 5121, 1080, 0),
		c(2000.1, rst, 1080, 0, 0),
	}) {
		seg := st.segment()
		s.AddSegment(at(st.ms), &seg, analysis.Note{})
	}
	r := &Result{Dir: "runs/x-reuse", Summary: s, Analysis: s.Close(&analysis.RunInfo{WorkloadEnd: at(1500)})}
	rec := &r.Record
	rec.Experiment, rec.Inline = "reuse", true
	rec.Device.Kind, rec.Device.Close, rec.Device.Size, rec.Device.Pool, rec.Device.TimeWait = DeviceLwIP, CloseAfterSend, 32, 5, "2*TCP_MSL"
	w := &rec.Workload
	w.Schedule, w.Requests, w.Concurrency, w.ClientClose, w.Quiet, w.PortRange = sched, 4, 4, "eof", "1m0s", "40000-40001"
	rec.Results = Results{RequestsOK: 2, RequestsFailed: 2, MaxStartError: "1.2ms", MaxGapError: "0.9ms",
		Verdicts: map[string]uint64{"pass": 12}}
	r.DeviceStatus = DeviceEvent{Event: "status", Accepted: 2, Responses: 2, Closed: 2, TimeWait: 1, Active: 0,
		PoolKilled: map[string]int{"time_wait": 1, "syn_rcvd": 0}}
	var b strings.Builder
	if err := WriteSummaryReport(&b, r); err != nil {
		t.Fatal(err)
	}
	want := `LAB
  run                                runs/x-reuse, experiment reuse
  device                             lwip (close close, size 32, pool 5, TIME_WAIT 2*TCP_MSL)
  workload                           schedule 3x1s (4 requests), concurrency 4, client close eof, quiet 1m0s, client ports 40000-40001
  requests                           2 ok, 2 failed, 0 late
  schedule errors                    largest start 1.2ms, largest gap 0.9ms; on the wire to the device -; 0 segments out of order on the bridge
  segments after the client stopped  3, the last 0.500 s after
  device at the end                  2 accepted, 2 responses, 2 closed, 0 aborted, 0 reset by the client; 0 active pcbs, 1 in TIME_WAIT; pool killed time_wait 1
  middlebox                          observe only; verdicts by action: pass 12
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("lab section (-want +got):\n%s", diff)
	}

	// The full report: the analysis first (its figures: one duel, two
	// ignored RSTs... by its definitions), then the lab's section.
	var full strings.Builder
	if err := WriteReport(&full, r); err != nil {
		t.Fatal(err)
	}
	text := full.String()
	lab := strings.Index(text, "\nLAB\n")
	if lab < 0 || !strings.HasPrefix(text, "run ") || !strings.HasSuffix(text, want) {
		t.Fatalf("report should be the analysis, then the lab section:\n%s", text)
	}
	for _, line := range []string{"  duels                                   1\n", "  RSTs (ignored)                          2 (1)\n", "  TIME_WAIT reuses                        1\n"} {
		if !strings.Contains(text[:lab], line) {
			t.Errorf("analysis part lacks %q:\n%s", line, text[:lab])
		}
	}
}

// TestSummaryRecordAllocatesNothing: on the engine's goroutine, a segment
// of a live connection costs no allocation.
func TestSummaryRecordAllocatesNothing(t *testing.T) {
	s, err := NewSummary(testClient.Addr(), testDevice.Addr(), DeviceLwIP)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range exchange(0, 1000) {
		seg := st.segment()
		s.AddSegment(at(st.ms), &seg, analysis.Note{})
	}
	st := c(0.5, ack, 1079, 5120, 0)
	ev := nfq.Event{Kind: nfq.EventVerdict, Left: at(0.5), Decision: &nfq.Decision{Rule: "r", Action: "delay"}, Seg: st.segment(), TCP: true}
	if allocs := testing.AllocsPerRun(1000, func() { s.Record(&ev) }); allocs != 0 {
		t.Errorf("Record allocates %v times per segment, want 0", allocs)
	}
	if got := s.Live(); got.Segments != 6+1001 || got.Connections != 1 {
		t.Errorf("live %+v, want %d segments of one connection", got, 6+1001)
	}
}
