package analysis

import (
	"testing"
	"time"

	"github.com/closeduel/closeduel/internal/roottest"
	"github.com/closeduel/closeduel/segment"
	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket/layers"
)

// streamCases are captures of one 4-tuple whose split into incarnations
// turns on where each side's initial sequence number comes from: its own
// SYN, its first other segment (seq-1), or the other side's first ACK
// (ack-1). want is tshark 4.0's tcp.stream count, checked by
// TestStreamsLikeTshark.
var streamCases = []struct {
	name  string
	want  int
	build func(s *synth, f flow)
}{
	{"capture starts with the device's leftover FIN, then a new SYN", 2, func(s *synth, f flow) {
		s.add(time.Millisecond, f, false, segment.FIN|segment.ACK, 9000, 2000, 0, "")
		s.add(time.Millisecond, f, true, segment.SYN, 1000, 0, 0, "")
		s.add(time.Millisecond, f, false, segment.SYN|segment.ACK, 5000, 1001, 0, "")
		s.add(time.Millisecond, f, true, segment.ACK, 1001, 5001, 0, "")
	}},
	{"leftover FIN, then a SYN at the ack it asked for less one", 1, func(s *synth, f flow) {
		s.add(time.Millisecond, f, false, segment.FIN|segment.ACK, 9000, 2000, 0, "")
		s.add(time.Millisecond, f, true, segment.SYN, 1999, 0, 0, "")
	}},
	{"leftover FIN and its ACK, then a new SYN", 2, func(s *synth, f flow) {
		s.add(time.Millisecond, f, false, segment.FIN|segment.ACK, 9000, 2000, 0, "")
		s.add(time.Millisecond, f, true, segment.ACK, 2000, 9001, 0, "")
		s.add(time.Millisecond, f, true, segment.SYN, 1000, 0, 0, "")
	}},
	{"mid-connection data, then a SYN one below it", 1, func(s *synth, f flow) {
		s.add(time.Millisecond, f, true, segment.PSH|segment.ACK, 3000, 7000, 10, "")
		s.add(time.Millisecond, f, true, segment.SYN, 2999, 0, 0, "")
	}},
	{"mid-connection data, then a SYN at its sequence number", 2, func(s *synth, f flow) {
		s.add(time.Millisecond, f, true, segment.PSH|segment.ACK, 3000, 7000, 10, "")
		s.add(time.Millisecond, f, true, segment.SYN, 3000, 0, 0, "")
	}},
	{"SYN+ACK first, then the SYN it answers", 1, func(s *synth, f flow) {
		s.add(time.Millisecond, f, false, segment.SYN|segment.ACK, 5000, 1001, 0, "")
		s.add(time.Millisecond, f, true, segment.SYN, 1000, 0, 0, "")
	}},
	{"SYN+ACK first, then another SYN", 2, func(s *synth, f flow) {
		s.add(time.Millisecond, f, false, segment.SYN|segment.ACK, 5000, 1001, 0, "")
		s.add(time.Millisecond, f, true, segment.SYN, 1500, 0, 0, "")
	}},
	{"refused SYN, then a new SYN", 2, func(s *synth, f flow) {
		s.add(time.Millisecond, f, true, segment.SYN, 1000, 0, 0, "")
		s.add(time.Millisecond, f, false, segment.RST|segment.ACK, 0, 1001, 0, "")
		s.add(time.Millisecond, f, true, segment.SYN, 1500, 0, 0, "")
	}},
	{"refused SYN, then the same SYN again", 1, func(s *synth, f flow) {
		s.add(time.Millisecond, f, true, segment.SYN, 1000, 0, 0, "")
		s.add(time.Millisecond, f, false, segment.RST|segment.ACK, 0, 1001, 0, "")
		s.add(time.Millisecond, f, true, segment.SYN, 1000, 0, 0, "")
	}},
	{"RST mid-connection, then a new SYN", 2, func(s *synth, f flow) {
		s.exchange(f)
		s.add(time.Millisecond, f, false, segment.RST, 5201, 0, 0, "")
		s.add(time.Millisecond, f, true, segment.SYN, 7000, 0, 0, "")
	}},
	// A bare RST (no ACK) gives the client no initial sequence number.
	{"capture starts with a bare RST, then a SYN", 1, func(s *synth, f flow) {
		s.add(time.Millisecond, f, false, segment.RST, 9000, 0, 0, "")
		s.add(time.Millisecond, f, true, segment.SYN, 1000, 0, 0, "")
	}},
	{"SYN retransmitted with the same ISN", 1, func(s *synth, f flow) {
		s.add(time.Millisecond, f, true, segment.SYN, 1000, 0, 0, "")
		s.add(time.Second, f, true, segment.SYN, 1000, 0, 0, "")
		s.add(time.Millisecond, f, false, segment.SYN|segment.ACK, 5000, 1001, 0, "")
		s.add(time.Millisecond, f, true, segment.ACK, 1001, 5001, 0, "")
	}},
	{"tuple reused with a new ISN after a FIN close", 2, func(s *synth, f flow) {
		s.exchange(f)
		s.cleanClose(f)
		s.add(time.Second, f, true, segment.SYN, 7000, 0, 0, "")
		s.add(time.Millisecond, f, false, segment.SYN|segment.ACK, 8000, 7001, 0, "")
	}},
	{"tuple reused with the same ISN after a FIN close", 1, func(s *synth, f flow) {
		s.exchange(f)
		s.cleanClose(f)
		s.add(time.Second, f, true, segment.SYN, 1000, 0, 0, "")
	}},
	{"new SYN on an open connection", 2, func(s *synth, f flow) {
		s.exchange(f)
		s.add(time.Millisecond, f, true, segment.SYN, 7000, 0, 0, "")
	}},
	{"the server's SYN with a new ISN", 2, func(s *synth, f flow) {
		s.exchange(f)
		s.cleanClose(f)
		s.add(time.Second, f, false, segment.SYN, 6000, 0, 0, "")
	}},
	{"leftover FIN, new SYN, then the new SYN again", 2, func(s *synth, f flow) {
		s.add(time.Millisecond, f, false, segment.FIN|segment.ACK, 9000, 2000, 0, "")
		s.add(time.Millisecond, f, true, segment.SYN, 1000, 0, 0, "")
		s.add(time.Second, f, true, segment.SYN, 1000, 0, 0, "")
	}},
	{"three incarnations: leftover FIN, SYN, SYN", 3, func(s *synth, f flow) {
		s.add(time.Millisecond, f, false, segment.FIN|segment.ACK, 9000, 2000, 0, "")
		s.add(time.Millisecond, f, true, segment.SYN, 1000, 0, 0, "")
		s.add(time.Second, f, true, segment.SYN, 3000, 0, 0, "")
	}},
}

// TestStreamsLikeTshark: on captures where a side's initial sequence
// number must be inferred, the connection count equals tshark's
// tcp.stream count and the expected one.
func TestStreamsLikeTshark(t *testing.T) {
	roottest.RequireTools(t, "tshark")
	for _, tc := range streamCases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSynth()
			tc.build(s, newFlow(40000))
			p := tempPath(t, "streams.pcap")
			s.writePcap(t, p, layers.LinkTypeEthernet)
			streams, _, _ := tsharkCounts(t, p)
			r := analyzeFiles(t, Config{}, p)
			want := []int{tc.want, tc.want}
			got := []int{streams, r.Totals.Connections}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("[tshark closeduel] streams (-want +got):\n%s", diff)
			}
		})
	}
}
