package rules

import (
	"fmt"
	"testing"
	"time"

	"github.com/closeduel/closeduel/mitigate"
	"github.com/closeduel/closeduel/nfq"
	"github.com/closeduel/closeduel/segment"
	"github.com/google/go-cmp/cmp"
)

const mitigationFile = `experiment: mit
about: mitigations under test
hosts: { client: 192.168.100.1, device: 192.168.100.99 }
ports: [80]
stacks: { client: linux, device: lwip }
rules: []
`

// decide runs one packet through d and returns its decision.
func decide(t *testing.T, d *Decider, p *nfq.Packet) nfq.Decision {
	t.Helper()
	var dec nfq.Decision
	d.Decide(p, &dec)
	if dec.Modified {
		if err := segment.FixChecksums(p.Data, &p.Seg); err != nil {
			t.Fatal(err)
		}
	}
	return dec
}

// deviceClosesFirst runs a whole connection from client port 40000 in
// which the device closes first and so ends in TIME-WAIT; the device sees
// it on port devPort (40000 unless moved), and so must the tracker.
func deviceClosesFirst(t *testing.T, d *Decider, w *wire, iss uint32, devPort uint16) {
	t.Helper()
	for _, s := range []struct {
		from, flags string
		seq, ack    uint32
		n           int
	}{
		{"c", "SYN", iss, 0, 0}, {"d", "SYN+ACK", 5000, iss + 1, 0}, {"c", "ACK", iss + 1, 5001, 0},
		{"c", "PSH+ACK", iss + 1, 5001, 10}, {"d", "PSH+ACK", 5001, iss + 11, 20},
		{"d", "FIN+ACK", 5021, iss + 11, 0}, {"c", "ACK", iss + 11, 5022, 0},
		{"c", "FIN+ACK", iss + 11, 5022, 0}, {"d", "ACK", 5022, iss + 12, 0},
	} {
		w.now = w.now.Add(time.Millisecond)
		w.port = 40000
		if s.from == "d" {
			w.port = devPort
		}
		p := w.pkt(s.from, s.flags, s.seq, s.ack, s.n)
		dec := decide(t, d, p)
		if devPort == 40000 && (dec.Modified || dec.Verdict != nfq.Accept) {
			t.Fatalf("%s %s: decision %+v, want a plain accept", s.from, s.flags, dec)
		}
		if dev := p.Seg.Dst; s.from == "c" && dev.Port() == 80 && p.Seg.Src.Port() != devPort {
			t.Fatalf("%s %s: left from port %d, want %d", s.from, s.flags, p.Seg.Src.Port(), devPort)
		}
		w.port = 40000
	}
}

// TestTimewaitGuard: a client SYN on a tuple the device holds in TIME-WAIT
// leaves with another source port; the device's answer comes back on the
// client's own port, logged with the moved one; checksums stay valid; the
// mapping holds for the connection and is let go at the next one.
func TestTimewaitGuard(t *testing.T) {
	f := mustParse(t, mitigationFile+"mitigations: { timewait-guard: on }\n")
	d := NewDecider(f, Options{})
	w := newWire(t)
	deviceClosesFirst(t, d, w, 1000, 40000)

	w.now = w.now.Add(time.Second)
	syn := w.pkt("c", "SYN", 9000, 0, 0)
	dec := decide(t, d, syn)
	moved := syn.Seg.Src.Port()
	if !dec.Modified || dec.Rule != "timewait-guard" || moved < mitigate.DefaultGuardLow {
		t.Fatalf("SYN on the TIME-WAIT tuple: decision %+v, source port %d; want it moved to %d or above", dec, moved, mitigate.DefaultGuardLow)
	}
	if !segment.ChecksumsValid(syn.Data, &syn.Seg) {
		t.Fatal("moved SYN: checksums invalid")
	}
	var seg segment.Segment
	if err := w.dec.Decode(syn.Data, &seg); err != nil || seg.Src.Port() != moved {
		t.Fatalf("moved SYN decodes to source port %d (%v), want %d", seg.Src.Port(), err, moved)
	}

	// The device answers on the moved port; the client gets its own.
	w.port = moved
	sa := w.pkt("d", "SYN+ACK", 7000, 9001, 0)
	dec = decide(t, d, sa)
	if !dec.Modified || sa.Seg.Dst.Port() != 40000 || dec.LogDstPort != moved {
		t.Fatalf("SYN+ACK: decision %+v, destination %d; want 40000, logged as %d", dec, sa.Seg.Dst.Port(), moved)
	}
	if !segment.ChecksumsValid(sa.Data, &sa.Seg) {
		t.Fatal("restored SYN+ACK: checksums invalid")
	}
	w.port = 40000
	ack := w.pkt("c", "ACK", 9001, 7001, 0)
	if decide(t, d, ack); ack.Seg.Src.Port() != moved {
		t.Fatalf("client ACK left from port %d, want %d", ack.Seg.Src.Port(), moved)
	}
	c, _ := d.tr.Lookup(ack.Seg.Tuple())
	if c == nil || c.Ends[c.End(ack.Seg.Dst)].State.String() != "established" {
		t.Fatalf("the tracker does not hold the moved connection established: %+v", c)
	}

	// Switched off, the connection stays moved.
	if changed, err := d.SetMitigation("timewait-guard", false); err != nil || !changed {
		t.Fatalf("SetMitigation off: %v, %v", changed, err)
	}
	data := w.pkt("c", "PSH+ACK", 9001, 7001, 5)
	if decide(t, d, data); data.Seg.Src.Port() != moved {
		t.Fatalf("after switching off, the moved connection's data left from %d, want %d", data.Seg.Src.Port(), moved)
	}
	st := d.MitigationStats()
	if st.Moved.Load() != 1 || st.Translated.Load() != 4 {
		t.Errorf("stats: moved %d translated %d, want 1 and 4", st.Moved.Load(), st.Translated.Load())
	}
}

// TestTimewaitGuardOff: without the guard the SYN leaves unchanged.
func TestTimewaitGuardOff(t *testing.T) {
	d := NewDecider(mustParse(t, mitigationFile), Options{})
	w := newWire(t)
	deviceClosesFirst(t, d, w, 1000, 40000)
	w.now = w.now.Add(time.Second)
	syn := w.pkt("c", "SYN", 9000, 0, 0)
	if dec := decide(t, d, syn); dec.Modified || syn.Seg.Src.Port() != 40000 {
		t.Fatalf("decision %+v, port %d; want the SYN untouched", dec, syn.Seg.Src.Port())
	}
}

// TestTimewaitGuardReleases: once the moved connection is done, the
// client's next SYN on its tuple lets the mapping go and is judged afresh
// (the device holds the original tuple in TIME-WAIT still, so it is moved
// again, to a port the device holds nothing on).
func TestTimewaitGuardReleases(t *testing.T) {
	d := NewDecider(mustParse(t, mitigationFile+"mitigations: { timewait-guard: on }\n"), Options{})
	w := newWire(t)
	deviceClosesFirst(t, d, w, 1000, 40000)
	w.now = w.now.Add(time.Second)
	deviceClosesFirst(t, d, w, 9000, mitigate.DefaultGuardLow) // moved, and closed by the device first
	st := d.MitigationStats()
	if st.Moved.Load() != 1 {
		t.Fatalf("moved %d connections, want 1", st.Moved.Load())
	}
	w.now = w.now.Add(time.Second)
	syn := w.pkt("c", "SYN", 20000, 0, 0)
	decide(t, d, syn)
	if st.Released.Load() != 1 || st.Moved.Load() != 2 {
		t.Fatalf("released %d moved %d, want 1 and 2", st.Released.Load(), st.Moved.Load())
	}
	if syn.Seg.Src.Port() == 40000 || syn.Seg.Src.Port() == mitigate.DefaultGuardLow {
		t.Fatalf("second moved SYN left from %d: want neither the original tuple nor the first moved one, both in TIME-WAIT", syn.Seg.Src.Port())
	}
}

// TestFinalAckRepair: a FIN the device retransmits after the client
// acknowledged it (the ACK dropped) is answered in the client's name and
// not forwarded; a client RST from no socket is kept from the device.
func TestFinalAckRepair(t *testing.T) {
	f := mustParse(t, mitigationFile+`mitigations: { final-ack-repair: on }
`)
	f.Rules = mustLibrary(t, "lost-final-ack").Rules
	d := NewDecider(f, Options{})
	w := newWire(t)
	steps := []struct {
		from, flags string
		seq, ack    uint32
		n           int
		want        string
	}{
		{"c", "SYN", 1000, 0, 0, ""}, {"d", "SYN+ACK", 5000, 1001, 0, ""}, {"c", "ACK", 1001, 5001, 0, ""},
		{"c", "PSH+ACK", 1001, 5001, 10, ""}, {"d", "PSH+ACK", 5001, 1011, 20, ""},
		{"d", "FIN+ACK", 5021, 1011, 0, ""},
		{"c", "FIN+ACK", 1011, 5022, 0, "drop-final-ack drop drop"},
		{"d", "FIN+ACK", 5021, 1011, 0, "final-ack-repair inject drop"},
	}
	var dec nfq.Decision
	for _, s := range steps {
		w.now = w.now.Add(time.Millisecond)
		dec = decide(t, d, w.pkt(s.from, s.flags, s.seq, s.ack, s.n))
		if got := summary(&dec); got != s.want {
			t.Fatalf("%s %s: %q, want %q", s.from, s.flags, got, s.want)
		}
	}
	if dec.NInjects != 1 {
		t.Fatalf("injects %d, want 1", dec.NInjects)
	}
	tpl := dec.Injects[0].Template
	want := segment.Template{Tuple: segment.Tuple{Src: w.pkt("c", "ACK", 0, 0, 0).Seg.Src, Dst: w.pkt("c", "ACK", 0, 0, 0).Seg.Dst},
		Flags: segment.FIN | segment.ACK, Seq: 1011, Ack: 5022, Window: 502}
	if tpl != want {
		t.Fatalf("repair sends %+v, want %+v (ACK of the FIN with the client's dropped FIN)", tpl, want)
	}
}

// TestFinalAckRepairRST: the client, reset and gone, answers the device's
// FIN with an RST; the repair keeps it and closes for the client.
func TestFinalAckRepairRST(t *testing.T) {
	d := NewDecider(mustParse(t, mitigationFile+"mitigations: { final-ack-repair: on }\n"), Options{})
	w := newWire(t)
	steps := []struct {
		from, flags string
		seq, ack    uint32
		n           int
		want        string
	}{
		{"c", "SYN", 1000, 0, 0, ""}, {"d", "SYN+ACK", 5000, 1001, 0, ""}, {"c", "ACK", 1001, 5001, 0, ""},
		{"c", "PSH+ACK", 1001, 5001, 10, ""}, {"d", "PSH+ACK", 5001, 1011, 20, ""},
		{"c", "RST+ACK", 1011, 5021, 0, ""}, // the client aborts (as SO_LINGER 0 does)
		{"d", "FIN+ACK", 5021, 1011, 0, ""}, // the device had not seen it yet
		{"c", "RST", 1011, 0, 0, "final-ack-repair inject drop"},
	}
	var dec nfq.Decision
	for _, s := range steps {
		w.now = w.now.Add(time.Millisecond)
		dec = decide(t, d, w.pkt(s.from, s.flags, s.seq, s.ack, s.n))
		if got := summary(&dec); got != s.want {
			t.Fatalf("%s %s: %q, want %q", s.from, s.flags, got, s.want)
		}
	}
	if tpl := dec.Injects[0].Template; tpl.Flags != segment.FIN|segment.ACK || tpl.Seq != 1011 || tpl.Ack != 5022 {
		t.Fatalf("repair sends %+v, want FIN+ACK seq 1011 ack 5022", tpl)
	}
}

// TestMitigationsAllocateNothing: translating a moved connection's
// segments allocates nothing per packet.
func TestMitigationsAllocateNothing(t *testing.T) {
	d := NewDecider(mustParse(t, mitigationFile+"mitigations: { timewait-guard: on, final-ack-repair: on, duel-quench: on }\n"), Options{})
	w := newWire(t)
	deviceClosesFirst(t, d, w, 1000, 40000)
	w.now = w.now.Add(time.Second)
	decide(t, d, w.pkt("c", "SYN", 9000, 0, 0))
	p := w.pkt("c", "ACK", 9001, 7001, 0)
	orig := append([]byte(nil), p.Data...)
	seg := p.Seg
	allocs := testing.AllocsPerRun(100, func() {
		copy(p.Data, orig)
		p.Seg = seg
		var dec nfq.Decision
		d.Decide(p, &dec)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per packet, want 0", allocs)
	}
}

// TestMitigationsSection: the section's errors name file:line:col.
func TestMitigationsSection(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{mitigationFile + "mitigations: { timewait-gaurd: on }\n", `test.yaml:7:16: unknown key "timewait-gaurd" in mitigations (did you mean "timewait-guard"?)`},
		{mitigationFile + "mitigations: { duel-quench: yes }\n", `test.yaml:7:29: mitigations: duel-quench: expected on or off, found "yes"`},
		{"experiment: x\nabout: y\nrules: []\nmitigations: { duel-quench: on }\n", `test.yaml:4:1: mitigations: act on the client's and the device's segments, but the file has no hosts: saying which addresses play them`},
	} {
		_, err := Parse("test.yaml", []byte(c.src))
		if err == nil || err.Error() != "rules: "+c.want {
			t.Errorf("error %v, want rules: %s", err, c.want)
		}
	}
	f := mustParse(t, mitigationFile+"mitigations: { timewait-guard: on, duel-quench: off }\n")
	if f.Mitigations.String() != "timewait-guard" {
		t.Errorf("mitigations on: %s, want timewait-guard", f.Mitigations)
	}
}

// TestDuelQuench: a SYN onto a tuple the device holds in TIME-WAIT, the
// device's old ACK, the client's RST, the SYN again and the old ACK again:
// two turns of a duel; duel-quench drops what follows on the tuple, and
// only that.
func TestDuelQuench(t *testing.T) {
	d := NewDecider(mustParse(t, mitigationFile+"mitigations: { duel-quench: on }\n"), Options{})
	w := newWire(t)
	deviceClosesFirst(t, d, w, 1000, 40000)
	w.now = w.now.Add(time.Second)
	steps := []struct {
		from, flags string
		seq, ack    uint32
		want        string
	}{
		{"c", "SYN", 9000, 0, ""},
		{"d", "ACK", 5022, 1012, ""}, // the stale ACK: the tuple is held
		{"c", "RST", 1012, 0, ""},    // one turn
		{"c", "SYN", 9000, 0, ""},
		{"d", "ACK", 5022, 1012, "duel-quench drop drop"}, // two
		{"c", "RST", 1012, 0, "duel-quench drop drop"},
		{"c", "SYN", 9000, 0, "duel-quench drop drop"},
	}
	for _, s := range steps {
		w.now = w.now.Add(10 * time.Millisecond)
		dec := decide(t, d, w.pkt(s.from, s.flags, s.seq, s.ack, 0))
		if got := summary(&dec); got != s.want {
			t.Fatalf("%s %s: %q, want %q", s.from, s.flags, got, s.want)
		}
		if dec.NInjects != 0 {
			t.Fatalf("%s %s: %d segments injected, want none", s.from, s.flags, dec.NInjects)
		}
	}
	// Another tuple is not affected.
	w.port = 40001
	if dec := decide(t, d, w.pkt("c", "SYN", 3000, 0, 0)); summary(&dec) != "" {
		t.Fatalf("SYN on another tuple: %q, want it to pass", summary(&dec))
	}
	if st := d.MitigationStats(); st.Quenched.Load() != 1 || st.QuenchDrops.Load() != 3 {
		t.Errorf("quenched %d, dropped %d; want 1 and 3", st.Quenched.Load(), st.QuenchDrops.Load())
	}
}

// TestFinReset: the device retransmits a FIN the client acknowledged:
// each retransmission is dropped and answered with an RST at exactly the
// FIN's acknowledgment number, final-ack-repair on or not.
func TestFinReset(t *testing.T) {
	for _, c := range []struct {
		name, mits string
		want       []string
	}{
		{"with the repair", "{ final-ack-repair: on, fin-reset: on }", []string{"fin-reset inject drop", "fin-reset inject drop"}},
		{"alone", "{ fin-reset: on }", []string{"fin-reset inject drop", "fin-reset inject drop"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := NewDecider(mustParse(t, mitigationFile+"mitigations: "+c.mits+"\n"), Options{})
			w := newWire(t)
			for _, s := range []struct {
				from, flags string
				seq, ack    uint32
				n           int
			}{
				{"c", "SYN", 1000, 0, 0}, {"d", "SYN+ACK", 5000, 1001, 0}, {"c", "ACK", 1001, 5001, 0},
				{"c", "PSH+ACK", 1001, 5001, 10}, {"d", "PSH+ACK", 5001, 1011, 20},
				{"d", "FIN+ACK", 5021, 1011, 0}, {"c", "FIN+ACK", 1011, 5022, 0},
			} {
				w.now = w.now.Add(time.Millisecond)
				if dec := decide(t, d, w.pkt(s.from, s.flags, s.seq, s.ack, s.n)); summary(&dec) != "" {
					t.Fatalf("%s %s: %q, want a plain accept", s.from, s.flags, summary(&dec))
				}
			}
			for i, want := range c.want {
				w.now = w.now.Add(time.Second)
				dec := decide(t, d, w.pkt("d", "FIN+ACK", 5021, 1012, 0))
				if got := summary(&dec); got != want || dec.NInjects != 2 {
					t.Fatalf("retransmission %d: %q with %d injects, want %q with 2", i+1, got, dec.NInjects, want)
				}
				// The RST where the device expects it; the client's FIN,
				// never acknowledged, acknowledged in the device's name.
				if tpl := dec.Injects[0].Template; tpl.Flags != segment.RST || tpl.Seq != 1012 || tpl.Tuple.Dst.Port() != 80 {
					t.Fatalf("reset sends %+v, want RST seq 1012 toward the device", tpl)
				}
				if tpl := dec.Injects[1].Template; tpl.Flags != segment.ACK || tpl.Seq != 5022 || tpl.Ack != 1012 || tpl.Tuple.Dst.Port() != 40000 {
					t.Fatalf("then %+v, want the ACK of the client's FIN (seq 5022 ack 1012) toward the client", tpl)
				}
			}
		})
	}
}

// TestFinResetClientFin: the client retransmits its FIN, which carried the
// ACK of the device's FIN (a busy device took in neither): the reset drops
// it, sends RSTs at the FIN's number and the one after, and acknowledges
// the client's FIN in the device's name.
func TestFinResetClientFin(t *testing.T) {
	d := NewDecider(mustParse(t, mitigationFile+"mitigations: { fin-reset: on }\n"), Options{})
	w := newWire(t)
	for _, s := range []struct {
		from, flags string
		seq, ack    uint32
		n           int
	}{
		{"c", "SYN", 1000, 0, 0}, {"d", "SYN+ACK", 5000, 1001, 0}, {"c", "ACK", 1001, 5001, 0},
		{"c", "PSH+ACK", 1001, 5001, 10}, {"d", "PSH+ACK", 5001, 1011, 20},
		{"d", "FIN+ACK", 5021, 1011, 0}, {"c", "FIN+ACK", 1011, 5022, 0},
	} {
		w.now = w.now.Add(time.Millisecond)
		decide(t, d, w.pkt(s.from, s.flags, s.seq, s.ack, s.n))
	}
	w.now = w.now.Add(200 * time.Millisecond)
	dec := decide(t, d, w.pkt("c", "FIN+ACK", 1011, 5022, 0))
	if got := summary(&dec); got != "fin-reset inject drop" || dec.NInjects != 3 {
		t.Fatalf("client FIN retransmitted: %q with %d injects, want fin-reset inject drop with 3", got, dec.NInjects)
	}
	var got []string
	for i := range dec.NInjects {
		tpl := dec.Injects[i].Template
		got = append(got, fmt.Sprintf("%d>%d %v seq %d ack %d", tpl.Tuple.Src.Port(), tpl.Tuple.Dst.Port(), tpl.Flags, tpl.Seq, tpl.Ack))
	}
	want := []string{"40000>80 RST seq 1011 ack 0", "40000>80 RST seq 1012 ack 0", "80>40000 ACK seq 5022 ack 1012"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("injects (-want +got):\n%s", diff)
	}
}
