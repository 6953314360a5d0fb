package nfq

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/closeduel/closeduel/segment"
	"github.com/closeduel/closeduel/vlanmark"
)

// fakeSink records what the carrier hands out, in order.
type fakeSink struct {
	verdicts  []fakeVerdict
	frames    int
	lastFrame []byte
	fail      bool
}

type fakeVerdict struct {
	ID        uint32
	Verdict   Verdict
	Rewritten bool
}

func (f *fakeSink) queueVerdict(id uint32, v Verdict, payload []byte) {
	f.verdicts = append(f.verdicts, fakeVerdict{ID: id, Verdict: v, Rewritten: payload != nil})
}

func (f *fakeSink) sendFrame(fr []byte, _ uint32, _ [6]byte) error {
	if f.fail {
		return errors.New("fake: send failed")
	}
	f.frames++
	f.lastFrame = append(f.lastFrame[:0], fr...)
	return nil
}

// scripted is a Decider that applies one Decision per packet id and
// records what the HoldObserver calls say.
type scripted struct {
	by   map[uint32]Decision
	left []leftCall
}

type leftCall struct {
	Token uint64
	How   Leave
	At    time.Duration // after t0
}

var t0 = time.Unix(1_700_000_000, 0)

func (s *scripted) Decide(p *Packet, d *Decision) {
	if dc, ok := s.by[p.ID]; ok {
		*d = dc
	}
}

func (s *scripted) Left(token uint64, how Leave, at time.Time) {
	s.left = append(s.left, leftCall{token, how, at.Sub(t0)})
}

// queued returns a queued TCP packet with the given id, cut to cut bytes
// when cut > 0.
func queued(t testing.TB, id uint32, payload, cut int) *queuedPacket {
	t.Helper()
	f, err := segment.Build(nil, []byte{2, 0, 0, 0, 0, 1}, []byte{2, 0, 0, 0, 0, 2}, &segment.Template{
		Tuple: segment.Tuple{Src: netip.MustParseAddrPort("192.168.100.1:40000"), Dst: netip.MustParseAddrPort("192.168.100.99:80")},
		Flags: segment.ACK | segment.PSH, Seq: segment.Seq(1000 + id), Ack: 1, Window: 512,
	})
	if err != nil {
		t.Fatal(err)
	}
	ip := append(f[segment.EthernetHeaderLen:], make([]byte, payload)...)
	binary.BigEndian.PutUint16(ip[2:4], uint16(len(ip))) // IPv4 total length
	qp := &queuedPacket{ID: id, PhysIn: 4, PhysOut: 5, HwAddr: []byte{2, 0, 0, 0, 0, 1}, Payload: ip}
	if cut > 0 && cut < len(ip) {
		qp.Payload, qp.CapLen = ip[:cut], uint32(len(ip))
	}
	return qp
}

func newTestCarrier(t testing.TB, cfg Config) (*carrier, *fakeSink, *scripted) {
	t.Helper()
	dc := &scripted{by: map[uint32]Decision{}}
	if cfg.Decider == nil {
		cfg.Decider = dc
	}
	sk := &fakeSink{}
	c := &carrier{}
	if err := c.initCarrier(cfg, sk); err != nil {
		t.Fatal(err)
	}
	return c, sk, dc
}

func TestCarrierHoldsAndReleasesAndTellsTheDecider(t *testing.T) {
	type step struct {
		at   time.Duration // when the packet arrives (or, id 0, a tick)
		id   uint32
		dec  Decision
		tick bool
	}
	for _, tc := range []struct {
		name     string
		maxHeld  int
		steps    []step
		want     []fakeVerdict
		wantLeft []leftCall
		stats    func(s Snapshot) string
	}{
		{
			name: "hold until a release names the key",
			steps: []step{
				{at: 0, id: 1, dec: Decision{HoldKey: 9, Delay: time.Second, Token: 101}},
				{at: time.Millisecond, id: 2, dec: Decision{Releases: [MaxReleases]uint64{9}, NReleases: 1}},
			},
			want:     []fakeVerdict{{ID: 2}, {ID: 1}},
			wantLeft: []leftCall{{101, LeftReleased, time.Millisecond}},
		},
		{
			name: "a 60 s hold is kept 60 s, not the default bound",
			steps: []step{
				{at: 0, id: 1, dec: Decision{HoldKey: 9, Delay: 60 * time.Second, Token: 7}},
				{at: 59 * time.Second, tick: true},
				{at: 60 * time.Second, tick: true},
			},
			want:     []fakeVerdict{{ID: 1}},
			wantLeft: []leftCall{{7, LeftDue, 60 * time.Second}},
		},
		{
			name: "a delay beyond MaxDelay is cut to it",
			steps: []step{
				{at: 0, id: 1, dec: Decision{Delay: time.Hour, Token: 7}},
				{at: MaxDelay, tick: true},
			},
			want:     []fakeVerdict{{ID: 1}},
			wantLeft: []leftCall{{7, LeftDue, MaxDelay}},
		},
		{
			name: "a hold without a bound waits MaxHold",
			steps: []step{
				{at: 0, id: 1, dec: Decision{HoldKey: 3, Token: 5}},
				{at: 5 * time.Second, tick: true},
			},
			want:     []fakeVerdict{{ID: 1}},
			wantLeft: []leftCall{{5, LeftDue, 5 * time.Second}},
		},
		{
			name:    "every slot busy: the verdict at once, the Decider told, the refusal counted",
			maxHeld: 1,
			steps: []step{
				{at: 0, id: 1, dec: Decision{Delay: time.Second, Token: 1}},
				{at: 0, id: 2, dec: Decision{Delay: time.Second, Token: 2, Verdict: Drop}},
				{at: time.Second, tick: true},
			},
			want:     []fakeVerdict{{ID: 2, Verdict: Drop}, {ID: 1}},
			wantLeft: []leftCall{{2, LeftOverflow, 0}, {1, LeftDue, time.Second}},
			stats: func(s Snapshot) string {
				if s.HoldOverflow != 1 || s.Held != 1 || s.Released != 1 || s.Dropped != 1 {
					return "want 1 refused, 1 held and released, 1 dropped"
				}
				return ""
			},
		},
		{
			name: "two keys released by one decision leave in hold order",
			steps: []step{
				{at: 0, id: 1, dec: Decision{HoldKey: 1, Delay: time.Second, Token: 11}},
				{at: 0, id: 2, dec: Decision{HoldKey: 2, Delay: time.Second, Token: 12}},
				{at: time.Millisecond, id: 3, dec: Decision{Releases: [MaxReleases]uint64{2, 1}, NReleases: 2}},
			},
			want:     []fakeVerdict{{ID: 3}, {ID: 2}, {ID: 1}},
			wantLeft: []leftCall{{12, LeftReleased, time.Millisecond}, {11, LeftReleased, time.Millisecond}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, sk, dc := newTestCarrier(t, Config{MaxHeld: tc.maxHeld})
			for _, st := range tc.steps {
				now := t0.Add(st.at)
				if !st.tick {
					dc.by[st.id] = st.dec
					c.handle(queued(t, st.id, 10, 0), now, false)
				}
				c.fireDue(now)
			}
			if diff := cmp.Diff(tc.want, sk.verdicts); diff != "" {
				t.Errorf("verdicts (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantLeft, dc.left); diff != "" {
				t.Errorf("Left calls (-want +got):\n%s", diff)
			}
			if tc.stats != nil {
				if msg := tc.stats(c.stats.snapshot()); msg != "" {
					t.Errorf("stats %+v: %s", c.stats.snapshot(), msg)
				}
			}
		})
	}
}

func TestCarrierReleasesEveryHeldPacketOnceAtShutdown(t *testing.T) {
	const n = 1000
	c, sk, dc := newTestCarrier(t, Config{MaxHeld: n})
	for i := uint32(1); i <= n; i++ {
		dc.by[i] = Decision{HoldKey: uint64(i%7 + 1), Delay: time.Minute, Token: uint64(i)}
		c.handle(queued(t, i, 10, 0), t0, false)
	}
	c.releaseAll(t0.Add(time.Second))
	seen := map[uint32]int{}
	for _, v := range sk.verdicts {
		seen[v.ID]++
	}
	for i := uint32(1); i <= n; i++ {
		if seen[i] != 1 {
			t.Fatalf("packet %d got %d verdicts, want 1", i, seen[i])
		}
	}
	if len(dc.left) != n {
		t.Fatalf("Decider told of %d packets leaving, want %d", len(dc.left), n)
	}
	for _, l := range dc.left {
		if l.How != LeftShutdown {
			t.Fatalf("left %v, want shutdown", l.How)
		}
	}
	if got := c.heldNow(); got != 0 {
		t.Errorf("%d still held", got)
	}
}

func TestCarrierPassesCutPacketsButNeverRewritesOrCopiesThem(t *testing.T) {
	c, sk, dc := newTestCarrier(t, Config{})
	dc.by[1] = Decision{Modified: true, Rewrote: "window", Duplicates: 2}
	dc.by[2] = Decision{Verdict: Drop}
	c.handle(queued(t, 1, 1000, HeaderRange), t0, false)
	c.handle(queued(t, 2, 1000, HeaderRange), t0, false)
	c.sendAfter(t0)
	want := []fakeVerdict{{ID: 1}, {ID: 2, Verdict: Drop}}
	if diff := cmp.Diff(want, sk.verdicts); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}
	s := c.stats.snapshot()
	if s.Cut != 2 || s.CutNeedsWhole != 1 || s.Duplicated != 0 || s.Modified != 0 || sk.frames != 0 {
		t.Errorf("stats %+v, frames %d: want 2 cut, 1 needing the whole packet, nothing copied or rewritten", s, sk.frames)
	}
}

func TestCarrierHoldAndReleaseAllocateNothing(t *testing.T) {
	c, _, dc := newTestCarrier(t, Config{})
	dc.by[1] = Decision{HoldKey: 1, Delay: time.Second, Token: 1}
	dc.by[2] = Decision{Releases: [MaxReleases]uint64{1}, NReleases: 1}
	q1, q2 := queued(t, 1, 100, 0), queued(t, 2, 100, 0)
	sink := c.sink.(*fakeSink)
	sink.verdicts = make([]fakeVerdict, 0, 4)
	dc.left = make([]leftCall, 0, 4)
	got := testing.AllocsPerRun(200, func() {
		sink.verdicts, dc.left = sink.verdicts[:0], dc.left[:0]
		c.handle(q1, t0, false)
		c.handle(q2, t0, false)
	})
	if got != 0 {
		t.Errorf("hold and release: %v allocations, want 0", got)
	}
}

// vlanEvents records the kind and VLAN of every event, and a tagged
// one's Ethernet addresses.
type vlanEvents []string

func (v *vlanEvents) Record(ev *Event) {
	s := ev.Kind.String() + " " + itoa(int(ev.PacketID)) + " " + ev.VLAN.String()
	if ev.VLAN.Tagged() {
		s += " " + net.HardwareAddr(ev.SrcMAC[:]).String() + ">" + net.HardwareAddr(ev.DstMAC[:]).String()
	}
	*v = append(*v, s)
}

// TestCarrierKeepsTheVLANFromTheMark: a packet whose mark carries a VLAN
// id (vlanmark's layout) is reported with it, given its verdict now or
// after a hold, and its copy leaves with the 802.1Q tag; a packet with a
// mark of another layout is reported untagged.
func TestCarrierKeepsTheVLANFromTheMark(t *testing.T) {
	var rec vlanEvents
	c, sk, dc := newTestCarrier(t, Config{Recorder: &rec})
	dc.by[2] = Decision{Delay: time.Second}
	dc.by[3] = Decision{Duplicates: 1}
	ad4094 := vlanmark.Tag{TPID: vlanmark.TPID8021AD, ID: 4094}
	c.hosts[netip.MustParseAddr("192.168.100.99")] = host{mac: [6]byte{2, 0, 0, 0, 0, 2}, port: 5, vlan: ad4094} // the device, learned before
	q10 := vlanmark.Mark(vlanmark.Tag{TPID: vlanmark.TPID8021Q, ID: 10})
	for id, mark := range map[uint32]uint32{1: q10, 2: q10, 3: vlanmark.Mark(ad4094), 4: 7} {
		qp := queued(t, id, 0, 0)
		qp.Mark = mark
		c.handle(qp, t0, false)
	}
	c.sendAfter(t0)
	c.fireDue(t0.Add(time.Second))
	slices.Sort(rec)
	const cl, dv = "02:00:00:00:00:01", "02:00:00:00:00:02" // the client's (learned from the queue's hardware address) and the device's
	want := []string{"duplicate 3 802.1ad 4094 " + cl + ">" + dv, "verdict 1 802.1Q 10 " + cl + ">" + dv, "verdict 2 802.1Q 10 " + cl + ">" + dv,
		"verdict 3 802.1ad 4094 " + cl + ">" + dv, "verdict 4 untagged"}
	if diff := cmp.Diff(want, []string(rec)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if f := sk.lastFrame; len(f) < 18 || binary.BigEndian.Uint16(f[12:]) != 0x88a8 || binary.BigEndian.Uint16(f[14:])&0xfff != 4094 || binary.BigEndian.Uint16(f[16:]) != 0x0800 {
		t.Errorf("the copy of an 802.1ad VLAN 4094 packet left as % x", f[:min(len(f), 18)])
	}

	// A crafted RST toward the client, whose last packet came tagged
	// 802.1Q 10, leaves with that tag, the IP packet right behind it.
	rec = rec[:0]
	dc.by[5] = Decision{NInjects: 1, Injects: [MaxInjects]Inject{{Template: segment.Template{
		Tuple: segment.Tuple{Src: netip.MustParseAddrPort("192.168.100.99:80"), Dst: netip.MustParseAddrPort("192.168.100.1:40000")},
		Flags: segment.RST, Seq: 1,
	}}}}
	qp := queued(t, 5, 0, 0)
	qp.Mark = q10
	c.handle(qp, t0, false)
	c.sendAfter(t0)
	if diff := cmp.Diff([]string{"verdict 5 802.1Q 10 " + cl + ">" + dv, "injected 0 802.1Q 10 " + dv + ">" + cl}, []string(rec)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	f := sk.lastFrame
	if len(f) < 38 || binary.BigEndian.Uint16(f[12:]) != 0x8100 || binary.BigEndian.Uint16(f[14:]) != 10 || binary.BigEndian.Uint16(f[16:]) != 0x0800 || f[18] != 0x45 || [4]byte(f[34:38]) != [4]byte{192, 168, 100, 1} {
		t.Errorf("the RST left as % x", f[:min(len(f), 38)])
	}
}
