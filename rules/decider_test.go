package rules

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/closeduel/closeduel/nfq"
	"github.com/closeduel/closeduel/segment"
	"github.com/closeduel/closeduel/tcpstate"
	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket/layers"
)

var (
	client = netip.MustParseAddr("192.168.100.1")
	device = netip.MustParseAddr("192.168.100.99")
	t0     = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
)

// wire makes real IPv4 packets between client:port and device:80.
type wire struct {
	t    testing.TB
	dec  *segment.Decoder
	port uint16
	now  time.Time
}

func newWire(t testing.TB) *wire {
	dec, err := segment.NewDecoder(layers.LinkTypeRaw)
	if err != nil {
		t.Fatal(err)
	}
	return &wire{t: t, dec: dec, port: 40000, now: t0}
}

// pkt builds a packet from "c" or "d" with the flags, numbers and payload
// length given, decoded as the engine would hand it over.
func (w *wire) pkt(from, flags string, seq, ack uint32, n int) *nfq.Packet {
	w.t.Helper()
	f, ok := segment.ParseFlags(flags)
	if !ok {
		w.t.Fatalf("bad flags %q", flags)
	}
	c, d := netip.AddrPortFrom(client, w.port), netip.AddrPortFrom(device, 80)
	tpl := segment.Template{Tuple: segment.Tuple{Src: c, Dst: d}, Flags: f, Seq: segment.Seq(seq), Ack: segment.Seq(ack), Window: 502}
	if from == "d" {
		tpl.Tuple = tpl.Tuple.Reverse()
	}
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	frame, err := segment.Build(nil, mac, mac, &tpl)
	if err != nil {
		w.t.Fatal(err)
	}
	ip := append([]byte(nil), frame[segment.EthernetHeaderLen:]...)
	ip = append(ip, make([]byte, n)...)
	binary.BigEndian.PutUint16(ip[2:4], uint16(len(ip)))
	p := &nfq.Packet{Time: w.now, Data: ip}
	if err := w.dec.Decode(ip, &p.Seg); err != nil {
		w.t.Fatal(err)
	}
	if err := segment.FixChecksums(ip, &p.Seg); err != nil {
		w.t.Fatal(err)
	}
	p.TCP = true
	return p
}

// step is one packet of a scripted exchange and what its Decision must say.
type dstep struct {
	from, flags string
	seq, ack    uint32
	n           int
	after       time.Duration // since the previous step
	want        string        // rule/action/verdict summary, "" for the default
}

func summary(d *nfq.Decision) string {
	if d.Rule == "" && d.Action == "" && d.Verdict == nfq.Accept && d.Delay == 0 && !d.Modified && d.HoldKey == 0 && d.NReleases == 0 && d.NInjects == 0 && d.Duplicates == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(d.Rule + " " + d.Action + " " + d.Verdict.String())
	if d.Delay != 0 {
		b.WriteString(" delay=" + d.Delay.String())
	}
	if d.Modified {
		b.WriteString(" rewrote=" + d.Rewrote)
	}
	if d.HoldKey != 0 {
		b.WriteString(" hold")
	}
	if d.NReleases != 0 {
		b.WriteString(" release")
	}
	if d.Duplicates != 0 {
		b.WriteString(" dup=" + d.DupGap.String())
	}
	return b.String()
}

func mustLibrary(t testing.TB, name string) *File {
	t.Helper()
	f, err := LoadLibrary(name)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func mustParse(t testing.TB, src string) *File {
	t.Helper()
	f, err := Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// exchange is an HTTP-like connection: handshake, request, response, then
// the device closes first and the client follows.
func exchange() []dstep {
	return []dstep{
		{from: "c", flags: "SYN", seq: 1000},
		{from: "d", flags: "SYN+ACK", seq: 5000, ack: 1001},
		{from: "c", flags: "ACK", seq: 1001, ack: 5001},
		{from: "c", flags: "PSH+ACK", seq: 1001, ack: 5001, n: 20},
		{from: "d", flags: "PSH+ACK", seq: 5001, ack: 1021, n: 100},
		{from: "d", flags: "FIN+ACK", seq: 5101, ack: 1021, after: time.Millisecond},
		{from: "c", flags: "ACK", seq: 1021, ack: 5102, after: time.Millisecond},
		{from: "c", flags: "FIN+ACK", seq: 1021, ack: 5102},
		{from: "d", flags: "ACK", seq: 5102, ack: 1022},
	}
}

func play(t *testing.T, d *Decider, w *wire, steps []dstep) []nfq.Decision {
	t.Helper()
	var out []nfq.Decision
	for i, s := range steps {
		w.now = w.now.Add(s.after)
		p := w.pkt(s.from, s.flags, s.seq, s.ack, s.n)
		var dec nfq.Decision
		d.Decide(p, &dec)
		if got := summary(&dec); got != s.want {
			t.Errorf("step %d (%s %s seq=%d ack=%d): decision %q, want %q", i+1, s.from, s.flags, s.seq, s.ack, got, s.want)
		}
		out = append(out, dec)
	}
	return out
}

func TestLostFinalAckDropsAcksOfDeviceFinUntilRetransmitted(t *testing.T) {
	d := NewDecider(mustLibrary(t, "lost-final-ack"), Options{})
	w := newWire(t)
	steps := exchange()
	// Both the client's ACK and its FIN+ACK acknowledge the device's FIN:
	// both are dropped while the device has sent its FIN once.
	steps[6].want = "drop-final-ack drop drop"
	steps[7].want = "drop-final-ack drop drop"
	// The device retransmits its FIN; from then on acknowledgments pass.
	steps = append(steps[:8],
		dstep{from: "d", flags: "FIN+ACK", seq: 5101, ack: 1021, after: 200 * time.Millisecond},
		dstep{from: "c", flags: "ACK", seq: 1022, ack: 5102},
		dstep{from: "c", flags: "FIN+ACK", seq: 1021, ack: 5102, after: 200 * time.Millisecond})
	decs := play(t, d, w, steps)
	if decs[6].Dir != "client>device" || decs[6].Conn == 0 || decs[5].Dir != "device>client" {
		t.Errorf("drop decision Dir %q Conn %d; FIN Dir %q", decs[6].Dir, decs[6].Conn, decs[5].Dir)
	}
	// A second connection starts afresh.
	w.port++
	steps = exchange()
	steps[6].want = "drop-final-ack drop drop"
	steps[7].want = "drop-final-ack drop drop"
	decs2 := play(t, d, w, steps)
	if decs2[0].Conn == decs[0].Conn {
		t.Errorf("second connection has the first one's id %d", decs[0].Conn)
	}
	if diff := cmp.Diff([]RuleStatus{{Name: "drop-final-ack", Enabled: true, Hits: 4, Action: "drop"}}, d.Rules()); diff != "" {
		t.Errorf("Rules (-want +got):\n%s", diff)
	}
}

func TestTrackerSeesOnlyWhatWasDelivered(t *testing.T) {
	d := NewDecider(mustLibrary(t, "lost-final-ack"), Options{})
	w := newWire(t)
	steps := exchange()[:7]
	steps[6].want = "drop-final-ack drop drop"
	play(t, d, w, steps)
	c, _ := d.tr.Lookup(segment.Tuple{Src: netip.AddrPortFrom(client, 40000), Dst: netip.AddrPortFrom(device, 80)})
	got := [2]tcpstate.State{c.Ends[c.End(netip.AddrPortFrom(client, 40000))].State, c.Ends[c.End(netip.AddrPortFrom(device, 80))].State}
	// The ACK of the device's FIN was dropped: the device is still in
	// FIN-WAIT-1, the client in CLOSE-WAIT.
	if want := [2]tcpstate.State{tcpstate.CloseWait, tcpstate.FinWait1}; got != want {
		t.Errorf("states (client, device) = %v, want %v", got, want)
	}
}

func TestDelayedFinalAckIsReproducible(t *testing.T) {
	delays := func() []time.Duration {
		d := NewDecider(mustLibrary(t, "delayed-final-ack"), Options{})
		w := newWire(t)
		var out []time.Duration
		for range 20 {
			w.port++
			for _, s := range exchange() {
				var dec nfq.Decision
				d.Decide(w.pkt(s.from, s.flags, s.seq, s.ack, s.n), &dec)
				if dec.Delay != 0 {
					out = append(out, dec.Delay)
				}
			}
		}
		return out
	}
	a, b := delays(), delays()
	if len(a) != 40 {
		t.Fatalf("%d delays for 20 connections, want 40 (the ACK and the FIN+ACK of each)", len(a))
	}
	distinct := map[time.Duration]bool{}
	for _, x := range a {
		if x < 250*time.Millisecond || x > 350*time.Millisecond {
			t.Errorf("delay %v outside 300ms ± 50ms", x)
		}
		distinct[x] = true
	}
	if len(distinct) < 30 {
		t.Errorf("only %d distinct delays out of 40: jitter is not drawn", len(distinct))
	}
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("same seed, different delays (-first +second):\n%s", diff)
	}
}

func TestDeviceFinToRstRewritesInPlace(t *testing.T) {
	d := NewDecider(mustLibrary(t, "device-fin-to-rst"), Options{})
	w := newWire(t)
	for _, s := range exchange()[:5] {
		d.Decide(w.pkt(s.from, s.flags, s.seq, s.ack, s.n), &nfq.Decision{})
	}
	p := w.pkt("d", "FIN+PSH+ACK", 5101, 1021, 0)
	var dec nfq.Decision
	d.Decide(p, &dec)
	if !dec.Modified || dec.Rewrote != "set RST, clear FIN+PSH" || dec.Rule != "fin-to-rst" || dec.Action != "rewrite" {
		t.Fatalf("decision %+v", dec)
	}
	if err := segment.FixChecksums(p.Data, &p.Seg); err != nil {
		t.Fatal(err)
	}
	var got segment.Segment
	if err := w.dec.Decode(p.Data, &got); err != nil {
		t.Fatal(err)
	}
	if got.Flags != segment.RST|segment.ACK || got.Seq != 5101 || got.Ack != 1021 || !segment.ChecksumsValid(p.Data, &got) {
		t.Errorf("rewritten packet: flags %v seq %d ack %d", got.Flags, got.Seq, got.Ack)
	}
	// The client received an RST: the tracker closed it.
	c, _ := d.tr.Lookup(got.Tuple())
	if st := c.Ends[c.End(got.Dst)].State; st != tcpstate.Closed {
		t.Errorf("client after the RST: %v, want closed", st)
	}
	if st := c.Ends[c.End(got.Src)].State; st != tcpstate.FinWait1 {
		t.Errorf("device after sending its FIN: %v, want fin-wait-1", st)
	}
}

func TestSimultaneousCloseHoldsDeviceFinUntilClientFin(t *testing.T) {
	d := NewDecider(mustLibrary(t, "simultaneous-close"), Options{})
	w := newWire(t)
	steps := exchange()[:5]
	steps = append(steps,
		dstep{from: "d", flags: "FIN+ACK", seq: 5101, ack: 1021, want: "hold-device-fin hold-until-next accept delay=2s hold"},
		dstep{from: "c", flags: "ACK", seq: 1021, ack: 5101},
		dstep{from: "c", flags: "FIN+ACK", seq: 1021, ack: 5101, want: "  accept release"},
		dstep{from: "d", flags: "ACK", seq: 5102, ack: 1022},
		dstep{from: "c", flags: "ACK", seq: 1022, ack: 5102},
	)
	decs := play(t, d, w, steps)
	if decs[7].NReleases != 1 || decs[5].HoldKey != decs[7].Releases[0] {
		t.Errorf("held under %d, released %v", decs[5].HoldKey, decs[7].Releases[:decs[7].NReleases])
	}
	c, _ := d.tr.Lookup(segment.Tuple{Src: netip.AddrPortFrom(client, 40000), Dst: netip.AddrPortFrom(device, 80)})
	for i := range c.Ends {
		if c.Ends[i].State != tcpstate.TimeWait {
			t.Errorf("%v ends in %v, want time-wait (both went through CLOSING)", c.Ends[i].Addr, c.Ends[i].State)
		}
	}
}

func TestHeldSegmentIsTakenAsArrivedAfterMax(t *testing.T) {
	d := NewDecider(mustLibrary(t, "simultaneous-close"), Options{})
	w := newWire(t)
	steps := exchange()[:5]
	steps = append(steps,
		dstep{from: "d", flags: "FIN+ACK", seq: 5101, ack: 1021, want: "hold-device-fin hold-until-next accept delay=2s hold"},
		dstep{from: "c", flags: "ACK", seq: 1021, ack: 5102, after: 2100 * time.Millisecond},
	)
	play(t, d, w, steps)
	c, _ := d.tr.Lookup(segment.Tuple{Src: netip.AddrPortFrom(client, 40000), Dst: netip.AddrPortFrom(device, 80)})
	if st := c.Ends[c.End(netip.AddrPortFrom(client, 40000))].State; st != tcpstate.CloseWait {
		t.Errorf("client %v, want close-wait: the engine let the FIN go after 2s", st)
	}
}

func TestInjectTakesSequenceNumbersFromTracker(t *testing.T) {
	f := mustParse(t, `experiment: inj
about: Inject.
hosts: { client: 192.168.100.1, device: 192.168.100.99 }
rules:
  - name: rst-device
    when: { from: client, has: [FIN] }
    do: { inject: { flags: RST, toward: device } }
  - name: rst-client-in-window
    when: { from: device, flags: ACK, acks: client-fin }
    do: { inject: { flags: RST+ACK, toward: client, seq: in-window, before: true, count: 2 } }
`)
	d := NewDecider(f, Options{})
	w := newWire(t)
	c, dv := netip.AddrPortFrom(client, 40000), netip.AddrPortFrom(device, 80)
	var decs []nfq.Decision
	for _, s := range exchange() {
		var dec nfq.Decision
		d.Decide(w.pkt(s.from, s.flags, s.seq, s.ack, s.n), &dec)
		decs = append(decs, dec)
	}
	want := nfq.Inject{Template: segment.Template{Tuple: segment.Tuple{Src: c, Dst: dv}, Flags: segment.RST, Seq: 1022}}
	if decs[7].NInjects != 1 || decs[7].Injects[0] != want {
		t.Errorf("inject after the client's FIN: %d %+v, want %+v", decs[7].NInjects, decs[7].Injects[0], want)
	}
	// Toward the client, in its window: the client expects 5102 and
	// advertised a window of 502 (no scaling): 5102 + 251. The ACK number
	// is what the device expects next, 1022.
	want = nfq.Inject{Template: segment.Template{Tuple: segment.Tuple{Src: dv, Dst: c}, Flags: segment.RST | segment.ACK, Seq: 5102 + 251, Ack: 1022}, Before: true}
	if decs[8].NInjects != 2 || decs[8].Injects[0] != want || decs[8].Injects[1] != want {
		t.Errorf("inject before the device's ACK: %d %+v, want 2 × %+v", decs[8].NInjects, decs[8].Injects[0], want)
	}
}

func TestCountingLimitsAndChance(t *testing.T) {
	hits := func(when string, conns int) []int {
		f := mustParse(t, `experiment: c
about: Counting.
seed: 7
rules:
  - name: r
    when: `+when+`
    do: log-only
`)
		d := NewDecider(f, Options{})
		w := newWire(t)
		var out []int
		n := 0
		for range conns {
			w.port++
			for range 10 {
				n++
				var dec nfq.Decision
				d.Decide(w.pkt("c", "ACK", 1, 1, 0), &dec)
				if dec.Rule == "r" {
					out = append(out, n)
				}
			}
		}
		return out
	}
	tests := []struct {
		when  string
		conns int
		want  []int
	}{
		{"{ nth: 3 }", 2, []int{3, 13}},
		{"{ every: 4 }", 2, []int{4, 8, 14, 18}},
		{"{ nth: 2, every: 3 }", 1, []int{2, 5, 8}},
		{"{ limit: 3 }", 2, []int{1, 2, 3}},
		{"{ limit-per-conn: 2 }", 2, []int{1, 2, 11, 12}},
		{"{ every: 2, limit-per-conn: 2 }", 2, []int{2, 4, 12, 14}},
	}
	for _, tc := range tests {
		t.Run(tc.when, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, hits(tc.when, tc.conns)); diff != "" {
				t.Errorf("matching packets (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("probability", func(t *testing.T) {
		a := hits("{ probability: 30% }", 100)
		if len(a) < 240 || len(a) > 360 {
			t.Errorf("%d of 1000 matched with probability 30%%", len(a))
		}
		if diff := cmp.Diff(a, hits("{ probability: 0.3 }", 100)); diff != "" {
			t.Errorf("same seed, different choices (-first +second):\n%s", diff)
		}
	})
}

func TestTimeWindowCountsFromFirstSegment(t *testing.T) {
	f := mustParse(t, `experiment: c
about: Time.
rules:
  - name: r
    when: { after: 1s, until: 2s }
    do: drop
`)
	d := NewDecider(f, Options{})
	w := newWire(t)
	var got []bool
	for _, at := range []time.Duration{0, 999 * time.Millisecond, time.Second, 1999 * time.Millisecond, 2 * time.Second} {
		w.now = t0.Add(at)
		var dec nfq.Decision
		d.Decide(w.pkt("c", "ACK", 1, 1, 0), &dec)
		got = append(got, dec.Verdict == nfq.Drop)
	}
	if diff := cmp.Diff([]bool{false, false, true, true, false}, got); diff != "" {
		t.Errorf("dropped (-want +got):\n%s", diff)
	}
}

func TestOutOfScopeAndNonTCPPass(t *testing.T) {
	d := NewDecider(mustLibrary(t, "lost-final-ack"), Options{})
	w := newWire(t)
	p := w.pkt("c", "ACK", 1, 1, 0)
	p.TCP = false
	var dec nfq.Decision
	d.Decide(p, &dec)
	if dec != (nfq.Decision{}) {
		t.Errorf("non-TCP: %+v", dec)
	}
	p = w.pkt("c", "ACK", 1, 1, 0)
	p.Seg.Dst = netip.AddrPortFrom(device, 8080) // not port 80
	d.Decide(p, &dec)
	if dec != (nfq.Decision{}) {
		t.Errorf("other port: %+v", dec)
	}
	if n := d.tr.Len(); n != 0 {
		t.Errorf("tracker holds %d connections for out-of-scope traffic", n)
	}
}

func TestSetEnabledAndReload(t *testing.T) {
	d := NewDecider(mustLibrary(t, "lost-device-fin"), Options{})
	if err := d.SetEnabled("drop-devcie-fin", false); err == nil || !strings.Contains(err.Error(), `did you mean "drop-device-fin"?`) {
		t.Errorf("SetEnabled(misspelt) = %v, want a did-you-mean error", err)
	}
	if err := d.SetEnabled("drop-device-fin", false); err != nil {
		t.Fatal(err)
	}
	w := newWire(t)
	steps := exchange()[:6] // up to the device's FIN: disabled, passes
	play(t, d, w, steps)
	// Reload with a rule that needs the tracker's state from before.
	d.Reload(mustParse(t, `experiment: after-reload
about: Reload.
hosts: { client: 192.168.100.1, device: 192.168.100.99 }
rules:
  - name: ack-in-fin-wait
    when: { from: client, device: fin-wait-1 }
    do: drop
`))
	play(t, d, w, []dstep{{from: "c", flags: "ACK", seq: 1021, ack: 5102, want: "ack-in-fin-wait drop drop"}})
	if got := d.File().Experiment; got != "after-reload" {
		t.Errorf("File().Experiment = %q", got)
	}
}

func TestDuplicateAndPass(t *testing.T) {
	f := mustParse(t, `experiment: dup
about: Duplicates.
rules:
  - name: keep-syn
    when: { has: [SYN] }
    do: pass
  - name: twice
    when: { payload: ">0" }
    do: { duplicate: 2, gap: 5ms }
`)
	d := NewDecider(f, Options{})
	w := newWire(t)
	play(t, d, w, []dstep{
		{from: "c", flags: "SYN", seq: 1000, want: "keep-syn pass accept"},
		{from: "c", flags: "PSH+ACK", seq: 1001, ack: 5001, n: 20, want: "twice duplicate accept dup=5ms"},
		{from: "c", flags: "ACK", seq: 1021, ack: 5001},
	})
}

// allocFile exercises every action kind.
const allocFile = `experiment: alloc
about: Every action.
hosts: { client: [192.168.100.1, 10.0.0.0/8], device: 192.168.100.99 }
ports: [80]
seed: 3
rules:
  - name: synpass
    when: { has: [SYN], none: [ACK], reuses-tuple: false }
    do: pass
  - name: dropfirst
    when: { from: client, acks: device-fin, nth: 1 }
    do: drop
  - name: delay
    when: { from: client, acks: device-fin, probability: 0.9 }
    do: { delay: 100ms, jitter: 10ms, distribution: normal }
  - name: hold
    when: { from: device, has: [FIN], retransmission: false }
    do: { hold-until-next: { from: client, has: [FIN] }, max: 1s }
  - name: rst
    when: { from: client, has: [FIN], device: [fin-wait-1, fin-wait-2, closing] }
    do: { inject: { flags: RST+ACK, toward: device, seq: in-window } }
  - name: rewrite
    when: { from: device, payload: ">0" }
    do: { rewrite: { ack: +1, window: 100 } }
  - name: dup
    when: { from: client, payload: 1..1000, limit-per-conn: 5 }
    do: { duplicate: 1, gap: 1ms }
  - name: log
    when: { after: 1ms }
    do: log-only
`

func allocPackets(t testing.TB) []*nfq.Packet {
	w := newWire(t)
	var ps []*nfq.Packet
	for range 50 {
		w.port++
		for _, s := range exchange() {
			w.now = w.now.Add(time.Millisecond)
			ps = append(ps, w.pkt(s.from, s.flags, s.seq, s.ack, s.n))
		}
	}
	return ps
}

func TestDecideAllocatesNothing(t *testing.T) {
	d := NewDecider(mustParse(t, allocFile), Options{MaxConns: 64})
	ps := allocPackets(t)
	orig := make([][]byte, len(ps))
	for i, p := range ps {
		orig[i] = append([]byte(nil), p.Data...)
	}
	var dec nfq.Decision
	actions := map[string]bool{}
	run := func() {
		for i, p := range ps {
			copy(p.Data, orig[i])
			dec = nfq.Decision{}
			d.Decide(p, &dec)
			actions[dec.Action] = true
		}
	}
	run() // warm up, and see that every action fires
	for _, a := range []string{"pass", "drop", "delay", "hold-until-next", "inject", "rewrite", "duplicate", "log-only"} {
		if !actions[a] {
			t.Errorf("action %s never fired: the test does not cover it", a)
		}
	}
	// Time moves on between runs so that connections are new ones.
	allocs := testing.AllocsPerRun(10, func() {
		for i, p := range ps {
			copy(p.Data, orig[i])
			p.Time = p.Time.Add(10 * time.Minute)
			dec = nfq.Decision{}
			d.Decide(p, &dec)
		}
	})
	if allocs != 0 {
		t.Errorf("Decide allocates %v times per %d packets, want 0", allocs, len(ps))
	}
}

func BenchmarkDecide(b *testing.B) {
	d := NewDecider(mustParse(b, allocFile), Options{})
	ps := allocPackets(b)
	orig := make([][]byte, len(ps))
	for i, p := range ps {
		orig[i] = append([]byte(nil), p.Data...)
	}
	var dec nfq.Decision
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		j := i % len(ps)
		p := ps[j]
		if j == 0 {
			for k, q := range ps {
				q.Time = q.Time.Add(10 * time.Minute)
				copy(q.Data, orig[k])
			}
		}
		dec = nfq.Decision{}
		d.Decide(p, &dec)
	}
}

// TestTwoHoldsOnOneConnectionKeepTheirOwnRelease holds the device's data
// until the client's FIN and the device's FIN until the client's next ACK:
// the second hold must not replace the first one's release condition.
func TestTwoHoldsOnOneConnectionKeepTheirOwnRelease(t *testing.T) {
	f := mustParse(t, `experiment: two-holds
about: Two holds on one connection.
hosts: { client: 192.168.100.1, device: 192.168.100.99 }
rules:
  - name: hold-data
    when: { from: device, has: [PSH] }
    do: { hold-until-next: { from: client, has: [FIN] }, max: 60s }
  - name: hold-fin
    when: { from: device, has: [FIN] }
    do: { hold-until-next: { from: client, has: [ACK] }, max: 60s }
`)
	d := NewDecider(f, Options{})
	w := newWire(t)
	steps := exchange()[:4]
	steps = append(steps,
		dstep{from: "d", flags: "PSH+ACK", seq: 5001, ack: 1021, n: 100, want: "hold-data hold-until-next accept delay=1m0s hold"},
		dstep{from: "d", flags: "FIN+ACK", seq: 5101, ack: 1021, want: "hold-fin hold-until-next accept delay=1m0s hold"},
		dstep{from: "c", flags: "ACK", seq: 1021, ack: 5001, want: "  accept release"},
		dstep{from: "c", flags: "FIN+ACK", seq: 1021, ack: 5001, want: "  accept release"},
	)
	decs := play(t, d, w, steps)
	data, fin := decs[4].HoldKey, decs[5].HoldKey
	if data == 0 || fin == 0 || data == fin {
		t.Fatalf("hold keys %d and %d, want two different keys", data, fin)
	}
	if got := decs[6].Releases[:decs[6].NReleases]; len(got) != 1 || got[0] != fin {
		t.Errorf("the client's ACK released %v, want only the FIN's hold %d", got, fin)
	}
	if got := decs[7].Releases[:decs[7].NReleases]; len(got) != 1 || got[0] != data {
		t.Errorf("the client's FIN released %v, want the data's hold %d", got, data)
	}
}

// TestLeftDeliversAHeldSegmentWhenTheEngineSaysSo: the engine refused a
// hold (every slot busy) and says so at once; the tracker must see the
// segment arrive then, not a minute later.
func TestLeftDeliversAHeldSegmentWhenTheEngineSaysSo(t *testing.T) {
	f := mustParse(t, `experiment: hold-fin
about: Hold the device FIN.
hosts: { client: 192.168.100.1, device: 192.168.100.99 }
rules:
  - name: hold-fin
    when: { from: device, has: [FIN] }
    do: { hold-until-next: { from: client, has: [RST] }, max: 60s }
`)
	d := NewDecider(f, Options{})
	w := newWire(t)
	decs := play(t, d, w, append(exchange()[:5],
		dstep{from: "d", flags: "FIN+ACK", seq: 5101, ack: 1021, want: "hold-fin hold-until-next accept delay=1m0s hold"}))
	tok := decs[5].Token
	if tok == 0 {
		t.Fatal("a held segment without a token")
	}
	tuple := segment.Tuple{Src: netip.AddrPortFrom(client, 40000), Dst: netip.AddrPortFrom(device, 80)}
	c, _ := d.tr.Lookup(tuple)
	before := c.Ends[0].State
	d.Left(tok, nfq.LeftOverflow, w.now)
	c, _ = d.tr.Lookup(tuple)
	if c.Ends[0].State == before {
		t.Errorf("client end still %v after the engine let the FIN go, want it to have seen the FIN", before)
	}
}
