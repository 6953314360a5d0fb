package tcpstate

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/closeduel/closeduel/internal/capturetest"
	"github.com/closeduel/closeduel/segment"
	"github.com/google/go-cmp/cmp"
)

// The recorded close sequences are the lab captures kept, with how each
// was made and what it must yield, in ../analysis/testdata (see its
// README.md): real Linux↔Linux closes and a run against the real lwIP
// device. The tracker replays them; its view of each connection must agree
// with the independent analysis there (goldens checked against tshark) and
// end in the states RFC 9293 and the stacks say.
const recordings = "../analysis/testdata"

// connSummary is what the tracker made of one incarnation.
type connSummary struct {
	Orig, Resp      string // addresses, from the opener's view
	Closer          string // "orig", "resp" or ""
	Retransmissions int
	RSTs            int
	Reused          bool
	Final           [2]State // orig, resp at the end of the capture
	Paths           [2]string
}

type replay struct {
	tr    *Tracker
	byID  map[uint64]*connSummary
	order []uint64
}

// replayCapture feeds every TCP segment of a capture to a tracker. lost
// says which segments never arrived (the capture was taken before the
// drop).
func replayCapture(t *testing.T, path string, stacks func(netip.AddrPort) Stack, lost func(*segment.Segment, []byte) bool) *replay {
	t.Helper()
	rp := &replay{tr: New(Config{Stack: stacks}), byID: map[uint64]*connSummary{}}
	for _, cs := range capturetest.Read(t, path) {
		s, data, at := cs.Seg, cs.Data, cs.At
		r := rp.tr.Sent(&s, at)
		c := r.Conn
		sum := rp.byID[c.ID]
		if sum == nil {
			sum = &connSummary{}
			rp.byID[c.ID] = sum
			rp.order = append(rp.order, c.ID)
		}
		if r.Events.Has(Retransmission) {
			sum.Retransmissions++
		}
		if s.Flags&segment.RST != 0 {
			sum.RSTs++
		}
		if lost == nil || !lost(&s, data) {
			rp.tr.Deliver(&s, c.ID, at)
		}
		rp.note(c)
	}
	return rp
}

// note records the connection's current states in its summary.
func (rp *replay) note(c *Conn) {
	sum := rp.byID[c.ID]
	o := int(c.Opener)
	if o < 0 {
		o = 0
	}
	sum.Orig, sum.Resp = c.Ends[o].Addr.String(), c.Ends[1-o].Addr.String()
	switch {
	case c.FirstCloser == int8(o):
		sum.Closer = "orig"
	case c.FirstCloser == int8(1-o):
		sum.Closer = "resp"
	}
	sum.Reused = c.Reused
	for i, e := range []*Endpoint{&c.Ends[o], &c.Ends[1-o]} {
		sum.Final[i] = e.State
		if p := sum.Paths[i]; !strings.HasSuffix(p, " "+e.State.String()) && p != e.State.String() {
			if p != "" {
				p += " "
			}
			sum.Paths[i] = p + e.State.String()
		}
	}
}

// golden is the part of an analysis golden report the tracker can be
// compared with.
type golden struct {
	Connections []struct {
		Orig, Resp      string
		Closer          string
		Retransmissions int
		RSTs            int  `json:"rsts"`
		Reuse           bool `json:"time_wait_reuse"`
		Established     bool
	}
}

func readGolden(t *testing.T, path string) golden {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// agree compares the tracker's incarnations with the analysis's
// connections, in order.
func agree(t *testing.T, rp *replay, g golden) {
	t.Helper()
	type row struct {
		Orig, Resp, Closer    string
		Retransmissions, RSTs int
		Reuse                 bool
	}
	var want, got []row
	for _, c := range g.Connections {
		// One first closer: the analysis reports the tracker's.
		closer := c.Closer
		if closer == "none" {
			closer = ""
		}
		want = append(want, row{c.Orig, c.Resp, closer, c.Retransmissions, c.RSTs, c.Reuse})
	}
	for _, id := range rp.order {
		s := rp.byID[id]
		got = append(got, row{s.Orig, s.Resp, s.Closer, s.Retransmissions, s.RSTs, s.Reused})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tracker and analysis disagree (-analysis +tracker):\n%s", diff)
	}
}

func allLinux(netip.AddrPort) Stack { return Linux }

func TestRecordedLinuxCleanChurn(t *testing.T) {
	rp := replayCapture(t, filepath.Join(recordings, "linux-clean-churn.pcap"), allLinux, nil)
	agree(t, rp, readGolden(t, filepath.Join(recordings, "linux-clean-churn.golden.json")))
	for _, id := range rp.order {
		s := rp.byID[id]
		// The client closed first: it ends in TIME-WAIT, the server,
		// whose FIN the client acknowledged, CLOSED. The server's FIN
		// carried the ACK of the client's, so the client passed through
		// FIN-WAIT-2 within that one segment.
		want := [2]string{"syn-sent established fin-wait-1 time-wait", "listen syn-received established close-wait last-ack closed"}
		if s.Paths != want {
			t.Errorf("connection %s: paths %q, want %q", s.Orig, s.Paths, want)
		}
	}
}

func TestRecordedLinuxLostFinalAck(t *testing.T) {
	// The client's final ACKs were dropped after the capture point: the
	// pure ACKs with TTL 63 (see the README).
	lost := func(s *segment.Segment, frame []byte) bool {
		return s.Flags == segment.ACK && s.PayloadLen == 0 && s.TTL == 63
	}
	rp := replayCapture(t, filepath.Join(recordings, "linux-lost-final-ack.pcap"), allLinux, lost)
	agree(t, rp, readGolden(t, filepath.Join(recordings, "linux-lost-final-ack.golden.json")))
	for _, id := range rp.order {
		s := rp.byID[id]
		// The server stays in LAST-ACK, retransmits its FIN, gets the
		// client's RST (its TIME-WAIT was never kept) and closes.
		want := [2]string{"syn-sent established fin-wait-1 time-wait closed", "listen syn-received established close-wait last-ack closed"}
		if s.Paths != want {
			t.Errorf("connection %s: paths %q, want %q", s.Orig, s.Paths, want)
		}
	}
}

func TestRecordedTimeWaitReuse(t *testing.T) {
	// The device namespace ran with tcp_rfc1337=1: its TIME-WAIT ignores
	// RSTs as lwIP's does.
	stacks := func(a netip.AddrPort) Stack {
		if a.Addr() == netip.MustParseAddr("192.168.100.99") {
			return LwIP
		}
		return Linux
	}
	rp := replayCapture(t, filepath.Join(recordings, "linux-time-wait-reuse.pcap"), stacks, nil)
	agree(t, rp, readGolden(t, filepath.Join(recordings, "linux-time-wait-reuse.golden.json")))
	if len(rp.order) != 2 {
		t.Fatalf("%d incarnations, want 2", len(rp.order))
	}
	reuse := rp.byID[rp.order[1]]
	// The second incarnation never gets past SYN-SENT: the device stays in
	// TIME-WAIT through every SYN and every RST.
	want := [2]string{"syn-sent", "time-wait"}
	if reuse.Paths != want {
		t.Errorf("reuse incarnation paths %q, want %q", reuse.Paths, want)
	}
	if st := rp.tr.Stats(); st.Created.Load() != 1 || st.Incarnations.Load() != 1 {
		t.Errorf("created %d, incarnations %d; want one 4-tuple with two incarnations", st.Created.Load(), st.Incarnations.Load())
	}
}

func TestRecordedLwIPObserve(t *testing.T) {
	stacks := func(a netip.AddrPort) Stack {
		if a.Addr() == netip.MustParseAddr("192.168.100.99") {
			return LwIP
		}
		return Linux
	}
	rp := replayCapture(t, filepath.Join(recordings, "lwip-observe", "capture.pcapng"), stacks, nil)
	agree(t, rp, readGolden(t, filepath.Join(recordings, "lwip-observe", "golden.json")))
	paths := map[string]int{}
	for _, id := range rp.order {
		s := rp.byID[id]
		paths[fmt.Sprintf("client: %s | device: %s", s.Paths[0], s.Paths[1])]++
	}
	// Every close ends with the client in TIME-WAIT and the device closed,
	// or, where the FINs crossed, both through CLOSING into TIME-WAIT.
	for p, n := range paths {
		t.Logf("%2d × %s", n, p)
	}
	want := map[string]int{}
	data, err := os.ReadFile(filepath.Join("testdata", "lwip-observe.paths"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var n int
		var p string
		if _, err := fmt.Sscanf(l, "%d", &n); err != nil {
			t.Fatalf("bad line %q", l)
		}
		_, p, _ = strings.Cut(l, " × ")
		want[p] = n
	}
	if diff := cmp.Diff(want, paths); diff != "" {
		t.Errorf("state paths (-testdata +tracker):\n%s", diff)
	}
}
