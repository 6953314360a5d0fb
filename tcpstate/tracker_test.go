package tcpstate

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/closeduel/closeduel/segment"
	"github.com/google/go-cmp/cmp"
)

var (
	clientAddr = netip.MustParseAddrPort("192.168.100.1:40000")
	deviceAddr = netip.MustParseAddrPort("192.168.100.99:80")
	t0         = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
)

// step is one thing that happens on the wire in a scenario.
type step struct {
	at    time.Duration // since t0
	do    string        // "pass": sent and delivered; "lose": sent, never delivered; "send": sent, delivered by a later "arrive"; "arrive"
	name  string        // names a "send" for its "arrive"
	from  string        // "c" or "d"
	flags string
	seq   uint32
	ack   uint32
	n     int // payload octets
	// want: events of Sent (checked when not empty), then the states after
	// the step: client, device.
	events string
	client State
	device State
	gone   bool // the tracker forgot the connection
}

type scenario struct {
	name   string
	stacks [2]Stack // client, device
	steps  []step
}

func mkseg(t testing.TB, from, flags string, seq, ack uint32, n int) segment.Segment {
	t.Helper()
	f, ok := segment.ParseFlags(flags)
	if !ok {
		t.Fatalf("bad flags %q", flags)
	}
	s := segment.Segment{Flags: f, Seq: segment.Seq(seq), Ack: segment.Seq(ack), PayloadLen: n, Window: 64240, WindowScale: -1}
	if from == "c" {
		s.Src, s.Dst = clientAddr, deviceAddr
	} else {
		s.Src, s.Dst = deviceAddr, clientAddr
	}
	if f&segment.SYN != 0 {
		s.WindowScale = 7
	}
	return s
}

func run(t *testing.T, sc scenario, cfg Config) *Tracker {
	t.Helper()
	cfg.Stack = func(a netip.AddrPort) Stack {
		if a == clientAddr {
			return sc.stacks[0]
		}
		return sc.stacks[1]
	}
	tr := New(cfg)
	inflight := map[string]segment.Segment{}
	for i, st := range sc.steps {
		now := t0.Add(st.at)
		label := fmt.Sprintf("step %d (%s %s %s seq=%d ack=%d)", i+1, st.do, st.from, st.flags, st.seq, st.ack)
		var gotEv string
		switch st.do {
		case "pass", "lose", "send":
			s := mkseg(t, st.from, st.flags, st.seq, st.ack, st.n)
			r := tr.Sent(&s, now)
			gotEv = r.Events.String()
			switch st.do {
			case "pass":
				tr.Deliver(&s, r.Conn.ID, now)
			case "send":
				inflight[st.name] = s
			}
		case "arrive":
			s, ok := inflight[st.name]
			if !ok {
				t.Fatalf("%s: nothing in flight named %q", label, st.name)
			}
			tr.Deliver(&s, 0, now)
		case "wait":
			tr.Sent(&segment.Segment{Src: netip.MustParseAddrPort("10.9.9.9:1"), Dst: netip.MustParseAddrPort("10.9.9.8:1"), Flags: segment.ACK}, now)
		default:
			t.Fatalf("%s: unknown do", label)
		}
		if st.events != "" && gotEv != st.events {
			t.Errorf("%s: events %s, want %s", label, gotEv, st.events)
		}
		c, _ := tr.Lookup(segment.Tuple{Src: clientAddr, Dst: deviceAddr})
		if st.gone {
			if c != nil {
				t.Errorf("%s: connection still tracked, want it forgotten", label)
			}
			continue
		}
		if c == nil {
			t.Fatalf("%s: connection not tracked", label)
		}
		tr.Age(c, now)
		got := [2]State{c.Ends[c.End(clientAddr)].State, c.Ends[c.End(deviceAddr)].State}
		if want := [2]State{st.client, st.device}; got != want {
			t.Errorf("%s: states (client, device) = %v, want %v", label, got, want)
		}
	}
	return tr
}

// handshake opens client 1000 -> device 5000 and exchanges a request of 20
// octets and a response of 100.
var handshake = []step{
	{do: "pass", from: "c", flags: "SYN", seq: 1000, events: "new", client: SynSent, device: Listen},
	{do: "pass", from: "d", flags: "SYN+ACK", seq: 5000, ack: 1001, events: "acks-syn", client: Established, device: SynReceived},
	{do: "pass", from: "c", flags: "ACK", seq: 1001, ack: 5001, events: "acks-syn", client: Established, device: Established},
	{do: "pass", from: "c", flags: "PSH+ACK", seq: 1001, ack: 5001, n: 20, events: "acks-syn", client: Established, device: Established},
	{do: "pass", from: "d", flags: "PSH+ACK", seq: 5001, ack: 1021, n: 100, events: "none", client: Established, device: Established},
}

func with(steps ...[]step) []step {
	var out []step
	for _, s := range steps {
		out = append(out, s...)
	}
	return out
}

// deviceCloses is the ordinary close with the device closing first.
var deviceCloses = []step{
	{at: time.Millisecond, do: "pass", from: "d", flags: "FIN+ACK", seq: 5101, ack: 1021, events: "none", client: CloseWait, device: FinWait1},
	{at: 2 * time.Millisecond, do: "pass", from: "c", flags: "ACK", seq: 1021, ack: 5102, events: "acks-fin", client: CloseWait, device: FinWait2},
	{at: 3 * time.Millisecond, do: "pass", from: "c", flags: "FIN+ACK", seq: 1021, ack: 5102, events: "acks-fin", client: LastAck, device: TimeWait},
	{at: 4 * time.Millisecond, do: "pass", from: "d", flags: "ACK", seq: 5102, ack: 1022, events: "acks-fin", client: Closed, device: TimeWait},
}

func TestCloseTransitions(t *testing.T) {
	lwip := [2]Stack{Linux, LwIP}
	linux := [2]Stack{Linux, Linux}
	tests := []scenario{
		{name: "device closes first", stacks: lwip, steps: with(handshake, deviceCloses)},
		{name: "client closes first", stacks: lwip, steps: with(handshake, []step{
			{do: "pass", from: "c", flags: "FIN+ACK", seq: 1021, ack: 5101, events: "none", client: FinWait1, device: CloseWait},
			{do: "pass", from: "d", flags: "ACK", seq: 5101, ack: 1022, events: "acks-fin", client: FinWait2, device: CloseWait},
			{do: "pass", from: "d", flags: "FIN+ACK", seq: 5101, ack: 1022, events: "acks-fin", client: TimeWait, device: LastAck},
			{do: "pass", from: "c", flags: "ACK", seq: 1022, ack: 5102, events: "acks-fin", client: TimeWait, device: Closed},
			// Linux's TIME-WAIT lasts 60 s.
			{at: 61 * time.Second, do: "wait", client: Closed, device: Closed},
		})},
		{name: "FIN and ACK in one segment answer a FIN", stacks: lwip, steps: with(handshake, []step{
			{do: "pass", from: "d", flags: "FIN+ACK", seq: 5101, ack: 1021, client: CloseWait, device: FinWait1},
			{do: "pass", from: "c", flags: "FIN+ACK", seq: 1021, ack: 5102, events: "acks-fin", client: LastAck, device: TimeWait},
			{do: "pass", from: "d", flags: "ACK", seq: 5102, ack: 1022, events: "acks-fin", client: Closed, device: TimeWait},
			// lwIP's TIME-WAIT lasts 2·MSL = 120 s.
			{at: 100 * time.Second, do: "wait", client: Closed, device: TimeWait},
			{at: 119 * time.Second, do: "wait", client: Closed, device: TimeWait},
			// Then it is closed on both sides, and forgotten 2·MSL after
			// its last segment.
			{at: 121 * time.Second, do: "wait", gone: true},
		})},
		{name: "simultaneous close", stacks: lwip, steps: with(handshake, []step{
			{do: "send", name: "dfin", from: "d", flags: "FIN+ACK", seq: 5101, ack: 1021, client: Established, device: FinWait1},
			{do: "send", name: "cfin", from: "c", flags: "FIN+ACK", seq: 1021, ack: 5101, events: "none", client: FinWait1, device: FinWait1},
			{do: "arrive", name: "dfin", client: Closing, device: FinWait1},
			{do: "arrive", name: "cfin", client: Closing, device: Closing},
			{do: "pass", from: "c", flags: "ACK", seq: 1022, ack: 5102, events: "acks-fin", client: Closing, device: TimeWait},
			{do: "pass", from: "d", flags: "ACK", seq: 5102, ack: 1022, events: "acks-fin", client: TimeWait, device: TimeWait},
		})},
		{name: "FINs cross beyond the middlebox", stacks: lwip, steps: with(handshake, []step{
			{do: "pass", from: "d", flags: "FIN+ACK", seq: 5101, ack: 1021, client: CloseWait, device: FinWait1},
			// The client's FIN does not acknowledge the device's: it left
			// before that FIN arrived, so the client was not in CLOSE-WAIT.
			{do: "pass", from: "c", flags: "FIN+ACK", seq: 1021, ack: 5101, events: "none", client: FinWait1, device: Closing},
			{do: "pass", from: "c", flags: "ACK", seq: 1022, ack: 5102, events: "acks-fin", client: Closing, device: TimeWait},
			{do: "pass", from: "d", flags: "ACK", seq: 5102, ack: 1022, events: "acks-fin", client: TimeWait, device: TimeWait},
		})},
		{name: "a FIN still on its way arrives before what follows it", stacks: lwip, steps: with(handshake, []step{
			{do: "pass", from: "d", flags: "FIN+ACK", seq: 5101, ack: 1021, client: CloseWait, device: FinWait1},
			{do: "pass", from: "c", flags: "FIN+ACK", seq: 1021, ack: 5101, client: FinWait1, device: Closing},
			{do: "pass", from: "d", flags: "ACK", seq: 5102, ack: 1022, events: "acks-fin", client: TimeWait, device: Closing},
		})},
		{name: "FIN answered by RST", stacks: lwip, steps: with(handshake, []step{
			{do: "pass", from: "d", flags: "FIN+ACK", seq: 5101, ack: 1021, client: CloseWait, device: FinWait1},
			{do: "pass", from: "c", flags: "RST+ACK", seq: 1021, ack: 5102, events: "none", client: Closed, device: Closed},
			{do: "pass", from: "d", flags: "ACK", seq: 5102, ack: 1021, events: "after-rst", client: Closed, device: Closed},
		})},
		{name: "FIN and RST in one segment: the RST wins", stacks: lwip, steps: with(handshake, []step{
			{do: "pass", from: "d", flags: "FIN+RST+ACK", seq: 5101, ack: 1021, events: "none", client: Closed, device: Closed},
		})},
		{name: "RST out of window is ignored, in window draws a challenge ACK", stacks: lwip, steps: with(handshake, []step{
			{do: "pass", from: "c", flags: "RST", seq: 1021 + 1<<30, client: Closed, device: Established},
			{do: "pass", from: "c", flags: "RST", seq: 1021 + 10, client: Closed, device: Established},
			{do: "pass", from: "d", flags: "ACK", seq: 5101, ack: 1021, events: "after-rst", client: Closed, device: Established},
			{do: "pass", from: "c", flags: "RST", seq: 1021, events: "after-rst", client: Closed, device: Closed},
		})},
		{name: "RST in TIME-WAIT is ignored by lwIP", stacks: lwip, steps: with(handshake, deviceCloses, []step{
			{do: "pass", from: "c", flags: "RST", seq: 1022, events: "none", client: Closed, device: TimeWait},
		})},
		{name: "exact RST ends TIME-WAIT on Linux", stacks: linux, steps: with(handshake, deviceCloses, []step{
			{do: "pass", from: "c", flags: "RST", seq: 1023, client: Closed, device: TimeWait},
			{do: "pass", from: "c", flags: "RST", seq: 1022, events: "after-rst", client: Closed, device: Closed},
		})},
		{name: "lost final ACK", stacks: lwip, steps: with(handshake, []step{
			{do: "pass", from: "c", flags: "FIN+ACK", seq: 1021, ack: 5101, client: FinWait1, device: CloseWait},
			{do: "pass", from: "d", flags: "FIN+ACK", seq: 5101, ack: 1022, events: "acks-fin", client: TimeWait, device: LastAck},
			{do: "lose", from: "c", flags: "ACK", seq: 1022, ack: 5102, events: "acks-fin", client: TimeWait, device: LastAck},
			{at: 30 * time.Second, do: "pass", from: "d", flags: "FIN+ACK", seq: 5101, ack: 1022, events: "retransmission+acks-fin", client: TimeWait, device: LastAck},
			// The retransmitted FIN restarted the client's TIME-WAIT.
			{at: 80 * time.Second, do: "wait", client: TimeWait, device: LastAck},
			{at: 80 * time.Second, do: "pass", from: "c", flags: "ACK", seq: 1022, ack: 5102, events: "acks-fin", client: TimeWait, device: Closed},
			{at: 91 * time.Second, do: "wait", client: Closed, device: Closed},
		})},
		{name: "lost final ACK after Linux freed the socket", stacks: lwip, steps: with(handshake, []step{
			{do: "pass", from: "c", flags: "FIN+ACK", seq: 1021, ack: 5101, client: FinWait1, device: CloseWait},
			{do: "pass", from: "d", flags: "FIN+ACK", seq: 5101, ack: 1022, client: TimeWait, device: LastAck},
			{do: "lose", from: "c", flags: "ACK", seq: 1022, ack: 5102, client: TimeWait, device: LastAck},
			{at: 61 * time.Second, do: "wait", client: Closed, device: LastAck},
			{at: 62 * time.Second, do: "pass", from: "d", flags: "FIN+ACK", seq: 5101, ack: 1022, events: "retransmission+acks-fin", client: Closed, device: LastAck},
			// Linux answers with an RST, which lwIP takes: exact sequence.
			{at: 62 * time.Second, do: "pass", from: "c", flags: "RST", seq: 1022, events: "none", client: Closed, device: Closed},
			{at: 63 * time.Second, do: "pass", from: "d", flags: "ACK", seq: 5102, ack: 1022, events: "acks-fin+after-rst", client: Closed, device: Closed},
		})},
		{name: "SYN on a reused tuple meets lwIP's TIME-WAIT", stacks: lwip, steps: with(handshake, deviceCloses, []step{
			{at: 5 * time.Second, do: "pass", from: "c", flags: "SYN", seq: 900000, events: "new+reuses-tuple", client: SynSent, device: TimeWait},
			// lwIP answers an out-of-window SYN with an ACK of the old
			// connection; Linux answers that with an RST; lwIP ignores it.
			{at: 5 * time.Second, do: "pass", from: "d", flags: "ACK", seq: 5102, ack: 1022, events: "stale-ack", client: SynSent, device: TimeWait},
			{at: 5 * time.Second, do: "pass", from: "c", flags: "RST", seq: 1022, events: "none", client: SynSent, device: TimeWait},
			{at: 6 * time.Second, do: "pass", from: "c", flags: "SYN", seq: 900000, events: "retransmission+reuses-tuple+after-rst", client: SynSent, device: TimeWait},
			{at: 6 * time.Second, do: "pass", from: "d", flags: "ACK", seq: 5102, ack: 1022, events: "after-rst+stale-ack", client: SynSent, device: TimeWait},
			// After 2·MSL the pcb is gone and the listener answers.
			{at: 125 * time.Second, do: "pass", from: "c", flags: "SYN", seq: 900000, events: "retransmission+reuses-tuple+after-rst", client: SynSent, device: Closed},
			{at: 125 * time.Second, do: "pass", from: "d", flags: "SYN+ACK", seq: 77000, ack: 900001, events: "acks-syn+after-rst", client: Established, device: SynReceived},
		})},
		{name: "SYN on a reused tuple is accepted by Linux's TIME-WAIT", stacks: linux, steps: with(handshake, deviceCloses, []step{
			{at: 5 * time.Second, do: "pass", from: "c", flags: "SYN", seq: 900000, events: "new+reuses-tuple", client: SynSent, device: TimeWait},
			{at: 5 * time.Second, do: "pass", from: "d", flags: "SYN+ACK", seq: 77000, ack: 900001, events: "acks-syn", client: Established, device: SynReceived},
			{at: 5 * time.Second, do: "pass", from: "c", flags: "ACK", seq: 900001, ack: 77001, events: "acks-syn", client: Established, device: Established},
		})},
		{name: "a stale ACK shows TIME-WAIT outlived its assumed length", stacks: linux, steps: with(handshake, deviceCloses, []step{
			// Linux's 60 s are over by the model, so the SYN reuses
			// nothing; the device's ACK of the old connection says it
			// still holds the tuple: a reuse after all, in conflict.
			{at: 70 * time.Second, do: "pass", from: "c", flags: "SYN", seq: 900000, events: "new", client: SynSent, device: Listen},
			{at: 70 * time.Second, do: "pass", from: "d", flags: "ACK", seq: 5102, ack: 1022, events: "stale-ack", client: SynSent, device: TimeWait},
			{at: 71 * time.Second, do: "pass", from: "c", flags: "SYN", seq: 900000, events: "retransmission+reuses-tuple", client: SynSent, device: TimeWait},
		})},
		{name: "SYN long after the close does not reuse", stacks: lwip, steps: with(handshake, deviceCloses, []step{
			{at: 200 * time.Second, do: "pass", from: "c", flags: "SYN", seq: 900000, events: "new", client: SynSent, device: Listen},
		})},
		{name: "picked up in the middle", stacks: lwip, steps: []step{
			{do: "pass", from: "d", flags: "PSH+ACK", seq: 5001, ack: 1021, n: 10, events: "new+midstream", client: Established, device: Established},
			{do: "pass", from: "d", flags: "FIN+ACK", seq: 5011, ack: 1021, events: "none", client: CloseWait, device: FinWait1},
			{do: "pass", from: "c", flags: "FIN+ACK", seq: 1021, ack: 5012, events: "acks-fin", client: LastAck, device: TimeWait},
		}},
		{name: "SYN retransmitted, SYN-ACK lost", stacks: lwip, steps: []step{
			{do: "pass", from: "c", flags: "SYN", seq: 1000, events: "new", client: SynSent, device: Listen},
			{do: "lose", from: "d", flags: "SYN+ACK", seq: 5000, ack: 1001, events: "acks-syn", client: SynSent, device: SynReceived},
			{at: time.Second, do: "pass", from: "c", flags: "SYN", seq: 1000, events: "retransmission", client: SynSent, device: SynReceived},
			{at: time.Second, do: "pass", from: "d", flags: "SYN+ACK", seq: 5000, ack: 1001, events: "retransmission+acks-syn", client: Established, device: SynReceived},
		}},
		{name: "keep-alive and data retransmission", stacks: lwip, steps: with(handshake, []step{
			{do: "pass", from: "d", flags: "ACK", seq: 5100, ack: 1021, n: 0, events: "keep-alive", client: Established, device: Established},
			{do: "pass", from: "d", flags: "PSH+ACK", seq: 5051, ack: 1021, n: 50, events: "retransmission", client: Established, device: Established},
		})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			run(t, tc, Config{})
		})
	}
}

func TestConnRecordsWhoClosedFirstAndWhen(t *testing.T) {
	sc := scenario{stacks: [2]Stack{Linux, LwIP}, steps: with(handshake, deviceCloses)}
	tr := run(t, sc, Config{})
	c, _ := tr.Lookup(segment.Tuple{Src: deviceAddr, Dst: clientAddr})
	d, cl := c.End(deviceAddr), c.End(clientAddr)
	type summary struct {
		Opener, FirstCloser       int
		FirstCloseRST             bool
		FirstCloseAt, ClosedAt    time.Duration
		DeviceFinAcked, ClientFin bool
		DeviceFinSeq              segment.Seq
		Segments                  [2]uint32
	}
	got := summary{
		Opener: int(c.Opener), FirstCloser: int(c.FirstCloser), FirstCloseRST: c.FirstCloseRST,
		FirstCloseAt: tr.Time(c.FirstCloseAt).Sub(t0), ClosedAt: tr.Time(c.ClosedAt).Sub(t0),
		DeviceFinAcked: c.Ends[d].FinAcked, ClientFin: c.Ends[cl].FinSent, DeviceFinSeq: c.Ends[d].FinSeq,
		Segments: [2]uint32{c.Ends[cl].Segments, c.Ends[d].Segments},
	}
	want := summary{
		Opener: cl, FirstCloser: d, FirstCloseAt: time.Millisecond, ClosedAt: 3 * time.Millisecond,
		DeviceFinAcked: true, ClientFin: true, DeviceFinSeq: 5101, Segments: [2]uint32{5, 4},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("connection summary (-want +got):\n%s", diff)
	}
}

func TestIncarnationsGetNewIDs(t *testing.T) {
	sc := scenario{stacks: [2]Stack{Linux, LwIP}, steps: with(handshake, deviceCloses, []step{
		{at: 5 * time.Second, do: "pass", from: "c", flags: "SYN", seq: 900000, client: SynSent, device: TimeWait},
	})}
	tr := run(t, sc, Config{})
	c, _ := tr.Lookup(segment.Tuple{Src: clientAddr, Dst: deviceAddr})
	if c.ID != 2 || c.PrevID != 1 || c.Incarnation != 2 || !c.Reused {
		t.Errorf("second incarnation: ID %d PrevID %d Incarnation %d Reused %v; want 2 1 2 true", c.ID, c.PrevID, c.Incarnation, c.Reused)
	}
	if got := tr.Stats().Incarnations.Load(); got != 1 {
		t.Errorf("Incarnations = %d, want 1", got)
	}
}

func tupleN(i int) (netip.AddrPort, netip.AddrPort) {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), uint16(1024+i%50000)),
		netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, 0, 1}), 80)
}

func TestMemoryIsBoundedAndEvictionsCounted(t *testing.T) {
	tr := New(Config{MaxConns: 8, Idle: time.Minute})
	for i := range 20 {
		a, b := tupleN(i)
		s := segment.Segment{Src: a, Dst: b, Flags: segment.SYN, Seq: 1}
		tr.Sent(&s, t0.Add(time.Duration(i)*time.Millisecond))
	}
	if tr.Len() != 8 || tr.Stats().Evicted.Load() != 12 || tr.Stats().Created.Load() != 20 {
		t.Errorf("Len %d Evicted %d Created %d; want 8 12 20", tr.Len(), tr.Stats().Evicted.Load(), tr.Stats().Created.Load())
	}
	for i := range 20 {
		a, b := tupleN(i)
		c, _ := tr.Lookup(segment.Tuple{Src: a, Dst: b})
		if want := i >= 12; (c != nil) != want {
			t.Errorf("connection %d tracked = %v, want %v (the 8 most recent stay)", i, c != nil, want)
		}
	}
	// After Idle every one of them expires as new segments come.
	for i := range 8 {
		a, b := tupleN(100 + i)
		s := segment.Segment{Src: a, Dst: b, Flags: segment.SYN, Seq: 1}
		tr.Sent(&s, t0.Add(2*time.Minute))
	}
	if tr.Stats().Expired.Load() != 8 || tr.Stats().Evicted.Load() != 12 {
		t.Errorf("Expired %d Evicted %d; want 8 12", tr.Stats().Expired.Load(), tr.Stats().Evicted.Load())
	}
}

func TestStateNamesRoundTrip(t *testing.T) {
	for s := Closed; s < numStates; s++ {
		for _, spelling := range []string{s.String(), strings.ToUpper(strings.ReplaceAll(s.String(), "-", "_"))} {
			got, ok := ParseState(spelling)
			if !ok || got != s {
				t.Errorf("ParseState(%q) = %v, %v; want %v", spelling, got, ok, s)
			}
		}
	}
	if _, ok := ParseState("time-wiat"); ok {
		t.Error("ParseState accepted a misspelling")
	}
}
