package analysis

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/closeduel/closeduel/internal/roottest"
)

// tsharkRSTs returns, per client port, the time of the last RST tshark
// (two-pass) sees on the tuple.
func tsharkRSTs(t *testing.T, path string) map[string]time.Time {
	t.Helper()
	out, err := exec.Command("tshark", "-2", "-r", path, "-Y", "tcp.flags.reset==1", "-T", "fields",
		"-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "frame.time_epoch").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	rsts := map[string]time.Time{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			continue
		}
		port := f[0]
		if port == "80" {
			port = f[1]
		}
		sec, frac, _ := strings.Cut(f[2], ".")
		s, _ := strconv.ParseInt(sec, 10, 64)
		frac = (frac + "000000000")[:9]
		ns, _ := strconv.ParseInt(frac, 10, 64)
		rsts[port] = time.Unix(s, ns).UTC()
	}
	return rsts
}

// TestLongLostFinalAck: the lab's long lost-final-ack run with the real
// lwIP device (testdata/README.md): every pure ACK the client sends of the
// device's FIN dropped, 200 s of watching. The device retransmits its FIN
// with back-off, Linux's TIME-WAIT acknowledges each (dropped again), and
// the FIN after the longest gap meets an RST, two minutes after the client
// stopped. Against tshark, on closeduel's capture (with its drops and the
// run's metadata) and on the lab's own bridge capture (a plain capture:
// every segment looks delivered, no run metadata): the connections are
// tshark's streams, the retransmissions and RSTs its counts, and each
// connection has exactly one duel that lasts until the tuple's RST and goes
// on after the client stopped (inferred, on the plain capture).
func TestLongLostFinalAck(t *testing.T) {
	roottest.RequireTools(t, "tshark")
	testFinBackoffDuels(t, "lwip-long-lost-final-ack", 10, CauseAfterFIN)
}

// TestStalledClose: the lab's lost-fin-acks experiment on the real lwIP
// device with the device closing first (`--client-close eof`,
// testdata/README.md): the client's FIN+ACK acknowledges the device's FIN,
// so it is dropped too, no endpoint reaches TIME-WAIT and the close never
// completes. The wire shows the same FIN back-off as a lost final ACK
// after the client's close, until Linux forgets its LAST-ACK and answers
// the next FIN with an RST about two minutes after the client stopped:
// one stalled-close duel per connection, each ending with the RST.
func TestStalledClose(t *testing.T) {
	roottest.RequireTools(t, "tshark")
	testFinBackoffDuels(t, "lwip-stalled-close", 3, CauseStalledClose)
}

// testFinBackoffDuels checks a lab run whose every connection ends in the
// device's FIN back-off until an RST (testdata/NAME/ and its plain bridge
// capture testdata/NAME-wire.pcapng) against tshark: conns connections,
// each with one duel of the cause (on the plain capture the dropped
// segments look delivered, so the close completes and the duel is
// after-fin) lasting until its RST, long after the client stopped.
func testFinBackoffDuels(t *testing.T, name string, conns int, cause Cause) {
	run, err := ReadRun("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	runInputs, err := RunInputs("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		paths   []string
		run     *RunInfo
		capture string
		cause   Cause
	}{
		{"closeduel's capture and log, with run metadata", runInputs, run, "testdata/" + name + "/capture.pcapng", cause},
		{"the lab's plain bridge capture", []string{"testdata/" + name + "-wire.pcapng"}, nil, "testdata/" + name + "-wire.pcapng", CauseAfterFIN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := analyzeFiles(t, Config{Run: tc.run}, tc.paths...)
			streams, retrans, rsts := tsharkCounts(t, tc.capture)
			if got, want := []int{r.Totals.Connections, r.Totals.Retransmissions, r.Totals.RSTs}, []int{streams, retrans, rsts}; !slices.Equal(got, want) {
				t.Errorf("[connections retransmissions RSTs] = %v, tshark %v", got, want)
			}
			if streams != conns {
				t.Errorf("tshark has %d streams, want the run's %d requests", streams, conns)
			}
			wend := run.WorkloadEnd
			if tc.run == nil {
				// Inferred: the client's last new connection, which the
				// run's workload_end (its last request's start) precedes by
				// the time to send the SYN.
				if r.InferredWorkloadEnd.IsZero() || r.InferredWorkloadEnd.Before(wend) || r.InferredWorkloadEnd.Sub(wend) > 50*time.Millisecond {
					t.Errorf("inferred workload end %v, want just after the run's %v", r.InferredWorkloadEnd, wend)
				}
				wend = r.InferredWorkloadEnd
				// Every report says the end was inferred.
				var txt, html, js strings.Builder
				if err := WriteText(&txt, r, TextOptions{}); err != nil {
					t.Fatal(err)
				}
				if err := WriteHTML(&html, r); err != nil {
					t.Fatal(err)
				}
				if err := json.NewEncoder(&js).Encode(r); err != nil {
					t.Fatal(err)
				}
				for _, c := range []struct{ name, text, want string }{
					{"text", txt.String(), "yes 12"}, {"text", txt.String(), "(inferred)"},
					{"html", html.String(), "end inferred"}, {"json", js.String(), `"inferred_workload_end"`},
				} {
					if !strings.Contains(c.text, c.want) {
						t.Errorf("the %s report does not say %q", c.name, c.want)
					}
				}
			} else if !r.InferredWorkloadEnd.IsZero() {
				t.Errorf("inferred a workload end %v although the run says %v", r.InferredWorkloadEnd, wend)
			}
			lastRST := tsharkRSTs(t, tc.capture)
			duels := map[int][]Duel{}
			for _, d := range r.Duels {
				duels[d.Connection] = append(duels[d.Connection], d)
			}
			if r.Totals.Duels != len(r.Connections) || r.Totals.DuelsAfterWorkload != len(r.Connections) {
				t.Errorf("%d duels, %d after the workload; want one per connection (%d), each after it", r.Totals.Duels, r.Totals.DuelsAfterWorkload, len(r.Connections))
			}
			for _, c := range r.Connections {
				port := c.Orig[strings.LastIndexByte(c.Orig, ':')+1:]
				ds := duels[c.ID]
				if len(ds) != 1 {
					t.Errorf("connection %s: %d duels, want 1", c.Orig, len(ds))
					continue
				}
				d := ds[0]
				rst, ok := lastRST[port]
				if !ok {
					t.Errorf("connection %s: tshark shows no RST", c.Orig)
					continue
				}
				if !d.End.Equal(rst) || d.Ongoing {
					t.Errorf("connection %s: duel ends %v (ongoing %v), want at the RST %v", c.Orig, d.End, d.Ongoing, rst)
				}
				if d.Duration < 100 || d.Cause != tc.cause || d.ByDirection[1].FIN < 5 || d.ByDirection[0].RST != 1 {
					t.Errorf("connection %s: duel %vs, cause %s, device FINs %d, client RSTs %d; want %s, the FIN back-off until the RST (over 100 s)",
						c.Orig, d.Duration, d.Cause, d.ByDirection[1].FIN, d.ByDirection[0].RST, tc.cause)
				}
				if d.AfterWorkload == nil || !*d.AfterWorkload || d.End.Sub(wend) < 100*time.Second {
					t.Errorf("connection %s: after workload %v, end %v; want it going on long after the client stopped (%v)", c.Orig, d.AfterWorkload, d.End, wend)
				}
			}
		})
	}
}

// TestDuelLastsThroughBackoff: a duel is one episode through quiet spells
// shorter than the longest retransmission back-off (no fixed 30 s gap); a
// quiet spell longer than Config.MaxBackoff ends it, an in-connection
// segment ends it, and a SYN opening a new incarnation on a settled tuple
// starts a new one.
func TestDuelLastsThroughBackoff(t *testing.T) {
	storm := func(s *synth, f flow) {
		for range 3 {
			s.add(10*time.Millisecond, f, false, fA, 5202, 1102, 0, "")
			s.add(10*time.Millisecond, f, true, fA, 1102, 5202, 0, "")
		}
	}
	quietStorms := func(s *synth) {
		f := newFlow(40030)
		s.exchange(f)
		s.cleanClose(f)
		storm(s, f)
		s.t += int64(100 * time.Second)
		storm(s, f)
	}
	settledThenSYN := func(s *synth) {
		f := newFlow(40031)
		s.exchange(f)
		s.cleanClose(f)
		storm(s, f)
		// A new connection on the tuple: its handshake, then a clean
		// close and another storm.
		s.t += int64(time.Second)
		s.add(0, f, true, fS, 90000, 0, 0, "")
		s.add(100*time.Microsecond, f, false, fS|fA, 7000, 90001, 0, "")
		s.add(100*time.Microsecond, f, true, fA, 90001, 7001, 0, "")
		s.add(100*time.Microsecond, f, true, fFA, 90001, 7001, 0, "")
		s.add(100*time.Microsecond, f, false, fFA, 7001, 90002, 0, "")
		s.add(100*time.Microsecond, f, true, fA, 90002, 7002, 0, "")
		for range 3 {
			s.add(10*time.Millisecond, f, false, fA, 7002, 90002, 0, "")
			s.add(10*time.Millisecond, f, true, fA, 90002, 7002, 0, "")
		}
	}
	settledThenHeld := func(s *synth) {
		f := newFlow(40032)
		s.exchange(f)
		s.cleanClose(f)
		storm(s, f)
		for range 2 {
			s.add(time.Second, f, true, fS, 900, 0, 0, "")
			s.add(100*time.Microsecond, f, false, fA, 5202, 1102, 0, "")
			s.add(100*time.Microsecond, f, true, fR, 1102, 0, 0, "")
		}
	}
	for _, tc := range []struct {
		name     string
		build    func(*synth)
		cfg      Config
		duels    int
		segments int
	}{
		{"100 s of quiet within the default 120 s back-off: one episode", quietStorms, Config{}, 1, 12},
		{"100 s of quiet past a 50 s back-off: two", quietStorms, Config{MaxBackoff: 50 * time.Second}, 2, 12},
		{"a new connection's handshake ends the first episode: two", settledThenSYN, Config{}, 2, 12},
		{"a settled tuple, then a SYN that meets a stale ACK: two", settledThenHeld, Config{}, 2, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSynth()
			tc.build(s)
			a := NewAnalyzer(tc.cfg)
			for i := range s.pkts {
				e := Event{Time: s.pkts[i].t, Seg: s.pkts[i].seg}
				a.Add(&e)
			}
			r := a.Finish()
			if r.Totals.Duels != tc.duels || r.Totals.DuelSegments != tc.segments {
				t.Errorf("%d duels of %d segments, want %d of %d", r.Totals.Duels, r.Totals.DuelSegments, tc.duels, tc.segments)
			}
		})
	}
}
