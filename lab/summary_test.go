package lab

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/closeduel/closeduel/segment"
)

var (
	testClient = netip.MustParseAddrPort("192.168.100.1:40000")
	testDevice = netip.MustParseAddrPort("192.168.100.99:80")
)

// step is one segment of a scripted exchange: at ms after the start, from
// the client (c) or the device (d).
type step struct {
	ms       float64
	fromDev  bool
	flags    segment.Flags
	seq, ack uint32
	payload  int
}

func c(ms float64, f segment.Flags, seq, ack uint32, payload int) step {
	return step{ms: ms, flags: f, seq: seq, ack: ack, payload: payload}
}

func d(ms float64, f segment.Flags, seq, ack uint32, payload int) step {
	return step{ms: ms, fromDev: true, flags: f, seq: seq, ack: ack, payload: payload}
}

const (
	syn    = segment.SYN
	synack = segment.SYN | segment.ACK
	ack    = segment.ACK
	psh    = segment.PSH | segment.ACK
	finack = segment.FIN | segment.ACK
	rst    = segment.RST
)

// handshake and response of a connection whose client ISN is 1000 and
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

func script(parts ...[]step) []step {
	var out []step
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

type summaryFigures struct {
	Connections, SYNRetransmits, IgnoredRSTs, ClientRSTs, DeviceRSTs, AfterStop int
	Closers                                                                     map[string]int
	Duels                                                                       []duelFigures
}

type duelFigures struct {
	Segments, IgnoredRSTs, SYNs, AfterStop int
	Duration                               time.Duration
}

func TestSummary(t *testing.T) {
	tests := []struct {
		name   string
		steps  []step
		stopMs float64 // 0: the client never stopped
		want   summaryFigures
	}{
		{
			name: "device closes first",
			steps: script(exchange(0, 1000), []step{
				d(0.5, finack, 5120, 1079, 0),
				c(0.6, finack, 1079, 5121, 0),
				d(0.7, ack, 5121, 1080, 0),
			}),
			want: summaryFigures{Connections: 1, Closers: map[string]int{"device-fin": 1}},
		},
		{
			name: "FINs cross",
			steps: script(exchange(0, 1000), []step{
				c(0.45, finack, 1079, 5120, 0),
				d(0.5, finack, 5120, 1079, 0),
				c(0.6, ack, 1080, 5121, 0),
				d(0.7, ack, 5121, 1080, 0),
			}),
			want: summaryFigures{Connections: 1, Closers: map[string]int{"crossed-fins": 1}},
		},
		{
			name: "client closes first",
			steps: script(exchange(0, 1000), []step{
				c(0.45, finack, 1079, 5120, 0),
				d(0.5, finack, 5120, 1080, 0),
				c(0.6, ack, 1080, 5121, 0),
			}),
			want: summaryFigures{Connections: 1, Closers: map[string]int{"client-fin": 1}},
		},
		{
			name: "device resets instead of closing",
			steps: script(exchange(0, 1000), []step{
				d(0.5, rst|ack, 5120, 1079, 0),
			}),
			want: summaryFigures{Connections: 1, DeviceRSTs: 1, Closers: map[string]int{"device-rst": 1}},
		},
		{
			// The device holds the old connection in TIME_WAIT: it answers
			// the new SYN with an ACK of the old one, ignores the client's
			// RST, and the client's SYN retransmissions keep it going
			// after the client stopped.
			name: "time-wait reuse duel",
			steps: script(exchange(0, 1000), []step{
				d(0.5, finack, 5120, 1079, 0),
				c(0.6, finack, 1079, 5121, 0),
				d(0.7, ack, 5121, 1080, 0),
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
			want: summaryFigures{
				Connections: 2, SYNRetransmits: 2, IgnoredRSTs: 2, ClientRSTs: 3, AfterStop: 6,
				Closers: map[string]int{"device-fin": 1, "no-handshake": 1},
				Duels:   []duelFigures{{Segments: 7, IgnoredRSTs: 2, SYNs: 2, AfterStop: 6, Duration: 2000 * time.Millisecond}},
			},
		},
		{
			// A Linux device in TIME_WAIT takes the new SYN: no duel.
			name: "time-wait reuse accepted",
			steps: script(exchange(0, 1000), []step{
				d(0.5, finack, 5120, 1079, 0),
				c(0.6, finack, 1079, 5121, 0),
				d(0.7, ack, 5121, 1080, 0),
			}, exchange(1000, 90000)),
			want: summaryFigures{Connections: 2, Closers: map[string]int{"device-fin": 1, "open": 1}},
		},
		{
			// A RST crossing a segment already in flight is not ignored.
			name: "RST crossing in flight",
			steps: script(exchange(0, 1000), []step{
				c(0.5, rst|ack, 1079, 5120, 0),
				d(0.51, finack, 5120, 1079, 0),
			}),
			want: summaryFigures{Connections: 1, ClientRSTs: 1, Closers: map[string]int{"client-rst": 1}},
		},
	}
	origin := time.Unix(1_800_000_000, 0)
	at := func(ms float64) time.Time { return origin.Add(time.Duration(ms * float64(time.Millisecond))) }
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSummary(testClient.Addr(), testDevice.Addr())
			if err != nil {
				t.Fatal(err)
			}
			if tt.stopMs > 0 {
				s.SetStop(at(tt.stopMs))
			}
			for _, st := range tt.steps {
				seg := segment.Segment{Src: testClient, Dst: testDevice, Flags: st.flags,
					Seq: segment.Seq(st.seq), Ack: segment.Seq(st.ack), PayloadLen: st.payload}
				if st.fromDev {
					seg.Src, seg.Dst = testDevice, testClient
				}
				s.AddSegment(at(st.ms), &seg)
			}
			s.Close()
			got := summaryFigures{Connections: s.Connections, SYNRetransmits: s.SYNRetransmits, IgnoredRSTs: s.IgnoredRSTs,
				ClientRSTs: s.ClientRSTs, DeviceRSTs: s.DeviceRSTs, AfterStop: s.AfterStop, Closers: map[string]int{}}
			for c := Closer(0); c < closerCount; c++ {
				if s.Closers[c] > 0 {
					got.Closers[c.String()] = s.Closers[c]
				}
			}
			for _, d := range s.Duels {
				got.Duels = append(got.Duels, duelFigures{Segments: d.Segments, IgnoredRSTs: d.IgnoredRSTs, SYNs: d.SYNs, AfterStop: d.AfterStop, Duration: d.Duration()})
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("summary (-want +got):\n%s", diff)
			}
			var b strings.Builder
			if _, err := s.WriteTo(&b); err != nil {
				t.Fatal(err)
			}
			if want := "duels: " + strconv.Itoa(len(tt.want.Duels)) + " "; !strings.Contains(b.String(), want) {
				t.Errorf("text summary lacks %q:\n%s", want, b.String())
			}
		})
	}
}
