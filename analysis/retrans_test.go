package analysis

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/closeduel/closeduel/internal/roottest"
	"github.com/closeduel/closeduel/segment"
	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket/layers"
)

// sender is one direction of a made-up bulk transfer: what it sent and
// what its peer received of it.
type sender struct {
	from, to netip.AddrPort
	isn      uint32
	nxt      uint32   // next new octet
	sent     []uint32 // starts of the data segments sent, in order
	lens     []uint32
	got      map[uint32]uint32 // seq → len of the segments the peer got
	rcvNxt   uint32            // the peer's contiguous receive point
	win      uint16            // the window the peer advertises
}

// deliver marks a segment received by the peer and moves its receive
// point over what is now contiguous.
func (s *sender) deliver(seq, n uint32) {
	s.got[seq] = n
	for {
		progressed := false
		for q, l := range s.got {
			if segment.Seq(q).LessThan(segment.Seq(s.rcvNxt)) || q == s.rcvNxt {
				if end := q + l; segment.Seq(s.rcvNxt).LessThan(segment.Seq(end)) {
					s.rcvNxt = end
					progressed = true
				}
				delete(s.got, q)
			}
		}
		if !progressed {
			return
		}
	}
}

// writeReordering writes a capture of conns made-up connections that
// exercise every branch of the sequence analysis: bulk data both ways,
// segments reordered, lost before or after the capture point, duplicate
// ACKs and fast retransmissions, timeouts, spurious retransmissions,
// keep-alives, zero windows and their probes, at time gaps on both sides
// of the handshake's round trip and of the 20 ms fast retransmission
// window.
func writeReordering(t *testing.T, path string, seed uint64, conns int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	s := newSynth()
	server := netip.MustParseAddrPort("10.0.0.2:80")
	gaps := []time.Duration{0, time.Microsecond, 10 * time.Microsecond, 40 * time.Microsecond,
		300 * time.Microsecond, 2 * time.Millisecond, 4 * time.Millisecond, 15 * time.Millisecond,
		25 * time.Millisecond, 200 * time.Millisecond}
	gap := func() time.Duration { return gaps[rng.IntN(len(gaps))] }
	for ci := range conns {
		client := netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(20000+ci))
		isn := func() uint32 {
			if rng.IntN(4) == 0 {
				return 0xffffffff - uint32(rng.IntN(3000)) // wraps
			}
			return rng.Uint32()
		}
		d := [2]*sender{
			{from: client, to: server, isn: isn(), win: 65535, got: map[uint32]uint32{}},
			{from: server, to: client, isn: isn(), win: 65535, got: map[uint32]uint32{}},
		}
		emit := func(dt time.Duration, from int, flags segment.Flags, seq, ack uint32, n int, win uint16) {
			s.t += int64(dt)
			a, b := d[from].from, d[from].to
			seg := segment.Segment{Src: a, Dst: b, Flags: flags, Seq: segment.Seq(seq), Ack: segment.Seq(ack), Window: win, PayloadLen: n, WindowScale: -1}
			s.pkts = append(s.pkts, synthPkt{t: s.t, seg: seg})
		}
		// ackOf is what side i acknowledges: the other direction's receive
		// point.
		ackOf := func(i int) uint32 { return d[1-i].rcvNxt }
		winOf := func(i int) uint16 { return d[1-i].win }
		// The handshake, with the round trip Wireshark takes as the
		// out-of-order threshold: from the last SYN to the first segment
		// with ACK and without SYN, either way (0 counts as unknown).
		rtt := []time.Duration{0, 20 * time.Microsecond, 300 * time.Microsecond, 5 * time.Millisecond}[rng.IntN(4)]
		c, sv := d[0], d[1]
		emit(time.Millisecond, 0, segment.SYN, c.isn, 0, 0, 64240)
		if rng.IntN(5) == 0 {
			emit(gap(), 0, segment.SYN, c.isn, 0, 0, 64240)
		}
		switch rng.IntN(4) {
		case 0: // the SYN-ACK missed by the capture
		case 1: // the server's own ACK first
			emit(rtt/2, 1, segment.SYN|segment.ACK, sv.isn, c.isn+1, 0, 65160)
			emit(rtt/4, 1, segment.ACK, sv.isn+1, c.isn+1, 0, 65160)
		default:
			emit(rtt/2, 1, segment.SYN|segment.ACK, sv.isn, c.isn+1, 0, 65160)
		}
		if rng.IntN(3) == 0 {
			// the handshake's ACK carries the request
			n := uint32(1 + rng.IntN(500))
			emit(rtt/2, 0, segment.PSH|segment.ACK, c.isn+1, sv.isn+1, int(n), 502)
			c.sent, c.lens = append(c.sent, c.isn+1), append(c.lens, n)
			c.nxt, c.rcvNxt = c.isn+1+n, c.isn+1+n
		} else {
			emit(rtt/2, 0, segment.ACK, c.isn+1, sv.isn+1, 0, 502)
			c.nxt, c.rcvNxt = c.isn+1, c.isn+1
		}
		sv.nxt, sv.rcvNxt = sv.isn+1, sv.isn+1
		steps := 30 + rng.IntN(120)
		for range steps {
			i := 0
			if rng.IntN(4) == 0 {
				i = 1
			}
			x, y := d[i], d[1-i]
			switch r := rng.IntN(100); {
			case r < 40: // new data; lost before or after the capture point at times
				n := uint32(1 + rng.IntN(1460))
				if rng.IntN(10) == 0 {
					n = 1
				}
				if x.win == 0 {
					// Probe the closed window with one octet.
					n = 1
				}
				seq := x.nxt
				x.sent, x.lens = append(x.sent, seq), append(x.lens, n)
				x.nxt += n
				switch rng.IntN(12) {
				case 0: // lost before the capture: the peer got it
					x.deliver(seq, n)
				case 1, 2: // lost after the capture
					emit(gap(), i, segment.PSH|segment.ACK, seq, ackOf(i), int(n), winOf(i))
				default:
					emit(gap(), i, segment.PSH|segment.ACK, seq, ackOf(i), int(n), winOf(i))
					if x.win != 0 || rng.IntN(2) == 0 {
						x.deliver(seq, n)
					}
				}
			case r < 47: // two new segments, reordered
				n1, n2 := uint32(1+rng.IntN(1460)), uint32(1+rng.IntN(1460))
				s1, s2 := x.nxt, x.nxt+n1
				x.sent, x.lens = append(x.sent, s1, s2), append(x.lens, n1, n2)
				x.nxt += n1 + n2
				emit(gap(), i, segment.ACK, s2, ackOf(i), int(n2), winOf(i))
				emit(gap(), i, segment.ACK, s1, ackOf(i), int(n1), winOf(i))
				x.deliver(s2, n2)
				x.deliver(s1, n1)
			case r < 70: // the peer acknowledges (a duplicate ACK when nothing new came)
				k := 1 + rng.IntN(3)
				for range k {
					emit(gap(), 1-i, segment.ACK, y.nxt, x.rcvNxt, 0, x.win)
				}
			case r < 82: // a retransmission of something sent, soon or late
				if len(x.sent) == 0 {
					continue
				}
				j := len(x.sent) - 1 - rng.IntN(min(len(x.sent), 6))
				if rng.IntN(3) == 0 {
					// the segment at the peer's receive point, as a fast
					// retransmission resends it
					for k := range x.sent {
						if x.sent[k] == x.rcvNxt {
							j = k
						}
					}
				}
				emit(gap(), i, segment.PSH|segment.ACK, x.sent[j], ackOf(i), int(x.lens[j]), winOf(i))
				x.deliver(x.sent[j], x.lens[j])
			case r < 83: // new data that starts one octet early
				n := uint32(2 + rng.IntN(1000))
				seq := x.nxt - 1
				x.sent, x.lens = append(x.sent, seq), append(x.lens, n)
				x.nxt = seq + n
				emit(gap(), i, segment.PSH|segment.ACK, seq, ackOf(i), int(n), winOf(i))
				x.deliver(seq, n)
			case r < 84: // an RST now and then, a SYN again, a bare FIN
				switch rng.IntN(3) {
				case 0:
					emit(gap(), i, segment.RST|segment.ACK, x.nxt, ackOf(i), 0, 0)
				case 1:
					emit(gap(), 0, segment.SYN, c.isn, 0, 0, 64240)
				default:
					emit(gap(), i, segment.FIN|segment.ACK, x.nxt, ackOf(i), 0, winOf(i))
				}
			case r < 86: // a keep-alive, with no octet or one
				n := rng.IntN(2)
				emit(gap(), i, segment.ACK, x.nxt-1, ackOf(i), n, winOf(i))
				if rng.IntN(2) == 0 {
					emit(gap(), 1-i, segment.ACK, y.nxt, x.rcvNxt, 0, x.win)
				}
			case r < 91: // the peer closes or opens its window
				if x.win == 0 {
					x.win = uint16(1000 + rng.IntN(60000))
				} else {
					x.win = 0
				}
				emit(gap(), 1-i, segment.ACK, y.nxt, x.rcvNxt, 0, x.win)
			case r < 95: // a window update without new data
				if x.win != 0 {
					x.win = uint16(1000 + rng.IntN(60000))
				}
				emit(gap(), 1-i, segment.ACK, y.nxt, x.rcvNxt, 0, x.win)
			default: // a long pause
				s.t += int64(time.Duration(rng.IntN(500)) * time.Millisecond)
			}
		}
		// Close: FINs, a retransmitted one at times, final ACK.
		emit(gap(), 0, segment.FIN|segment.ACK, c.nxt, ackOf(0), 0, winOf(0))
		if rng.IntN(4) == 0 {
			emit(gap(), 0, segment.FIN|segment.ACK, c.nxt, ackOf(0), 0, winOf(0))
		}
		c.nxt++
		emit(gap(), 1, segment.FIN|segment.ACK, sv.nxt, c.nxt, 0, winOf(1))
		sv.nxt++
		emit(gap(), 0, segment.ACK, c.nxt, sv.nxt, 0, winOf(0))
		s.t += int64(time.Second)
	}
	s.writePcap(t, path, layers.LinkTypeEthernet)
}

// tsharkFlags are the analysis flags of Wireshark that the made-up
// transfers must raise, besides tcp.analysis.retransmission: the
// branches of its sequence analysis.
var tsharkFlags = []string{
	"tcp.analysis.fast_retransmission",
	"tcp.analysis.spurious_retransmission",
	"tcp.analysis.out_of_order",
	"tcp.analysis.duplicate_ack",
	"tcp.analysis.ack_lost_segment",
	"tcp.analysis.lost_segment",
	"tcp.analysis.keep_alive",
	"tcp.analysis.zero_window_probe",
}

// tsharkRetransByPort returns tshark's tcp.analysis.retransmission frames
// per client port (the higher of the two), and how many frames carry each
// of tsharkFlags.
func tsharkRetransByPort(t *testing.T, path string) (byPort map[string]int, flags map[string]int) {
	t.Helper()
	args := []string{"-r", path, "-2", "-T", "fields",
		"-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.analysis.retransmission"}
	for _, f := range tsharkFlags {
		args = append(args, "-e", f)
	}
	out, err := exec.Command("tshark", args...).Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	byPort, flags = map[string]int{}, map[string]int{}
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 3+len(tsharkFlags) {
			continue
		}
		a, _ := strconv.Atoi(f[0])
		b, _ := strconv.Atoi(f[1])
		port := strconv.Itoa(max(a, b))
		if _, ok := byPort[port]; !ok {
			byPort[port] = 0
		}
		if f[2] != "" {
			byPort[port]++
		}
		for i, name := range tsharkFlags {
			if f[3+i] != "" {
				flags[name]++
			}
		}
	}
	return byPort, flags
}

// TestRetransmissionsLikeTshark compares the retransmissions of every
// connection with Wireshark's on made-up transfers that reorder, lose,
// duplicate and probe (writeReordering): the fast, spurious and plain
// retransmissions and the out-of-order segments, keep-alives and
// zero-window probes that are none.
func TestRetransmissionsLikeTshark(t *testing.T) {
	roottest.RequireTools(t, "tshark")
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			p := tempPath(t, "reorder.pcap")
			writeReordering(t, p, seed, 150)
			r := analyzeFiles(t, Config{}, p)
			want, flags := tsharkRetransByPort(t, p)
			got := map[string]int{}
			for _, c := range r.Connections {
				ap, err := netip.ParseAddrPort(c.Orig)
				if err != nil {
					t.Fatal(err)
				}
				got[strconv.Itoa(int(ap.Port()))] += c.Retransmissions
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("retransmissions per client port (-tshark +closeduel):\n%s", diff)
			}
			if r.Totals.Connections != 150 || len(want) != 150 {
				t.Errorf("%d connections, tshark %d: want 150", r.Totals.Connections, len(want))
			}
			for _, name := range tsharkFlags {
				if flags[name] < 20 {
					t.Errorf("%s on %d frames: the capture does not exercise that branch", name, flags[name])
				}
			}
			t.Logf("%d retransmissions in %d segments; tshark flags %v", r.Totals.Retransmissions, r.Totals.Segments, flags)
		})
	}
}
