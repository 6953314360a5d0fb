package lab

import (
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/closeduel/closeduel/segment"
	"github.com/gopacket/gopacket/layers"
)

// Closer says who closed a connection first.
type Closer uint8

// Closers.
const (
	CloserNone        Closer = iota // no FIN or RST seen
	CloserDevice                    // the device's FIN came first and the client's FIN acked it
	CloserClient                    // the client's FIN came first and the device's FIN acked it
	CloserCrossed                   // the FINs crossed: neither acked the other's (simultaneous close)
	CloserDeviceRST                 // the device reset the connection before any FIN
	CloserClientRST                 // the client reset the connection before any FIN
	CloserNoHandshake               // the device never answered the SYN with SYN+ACK
	closerCount
)

// String names the closer as the summary prints it.
func (c Closer) String() string {
	switch c {
	case CloserNone:
		return "open"
	case CloserDevice:
		return "device-fin"
	case CloserClient:
		return "client-fin"
	case CloserCrossed:
		return "crossed-fins"
	case CloserDeviceRST:
		return "device-rst"
	case CloserClientRST:
		return "client-rst"
	case CloserNoHandshake:
		return "no-handshake"
	}
	return fmt.Sprintf("closer(%d)", uint8(c))
}

// ignoredRSTGap is how long after a RST a segment from its receiver must
// come to show the RST was ignored rather than crossed in flight.
const ignoredRSTGap = 5 * time.Millisecond

// duelIdle ends a duel after this much silence on its 4-tuple (the
// analysis package's default duel gap; SYN retransmissions back off to
// 16 s and more).
const duelIdle = 30 * time.Second

// Duel is a run of segments on one 4-tuple in which a stack ignores the
// other's RSTs and the exchange goes on (the lab's working definition until
// the analysis package's report replaces it).
type Duel struct {
	Client, Device netip.AddrPort
	Start, End     time.Time
	// Segments counts the segments of the duel, IgnoredRSTs the RSTs that
	// were followed by more segments from their receiver, SYNs the
	// client's SYNs in it.
	Segments, IgnoredRSTs, SYNs int
	// AfterStop counts the duel's segments sent after the client stopped.
	AfterStop int
}

// Duration is the time from the duel's first segment to its last.
func (d *Duel) Duration() time.Duration { return d.End.Sub(d.Start) }

type tupleState struct {
	isn          segment.Seq // the client's SYN seq of the current incarnation
	started      bool
	synAcked     bool // the device answered with SYN+ACK
	closer       Closer
	clientFIN    bool
	clientFINEnd segment.Seq
	deviceFIN    bool
	deviceFINEnd segment.Seq
	rstFrom      int // 0 none, 1 client, 2 device
	rstAt        time.Time
	// since the last RST (itself included): segments, client SYNs, and
	// segments after the client stopped
	sinceRST, synsSinceRST, afterSinceRST int
	duel                                  *Duel
	last                                  time.Time
}

// Summary tallies what crossed the bridge: connections, who closed first,
// RSTs, and duels. It is the lab's own small report, kept until the
// analysis package's report replaces it; it is not safe for concurrent use.
type Summary struct {
	client, device netip.Addr
	dec            *segment.Decoder
	seg            segment.Segment
	tuples         map[segment.Tuple]*tupleState
	stop           time.Time

	Frames, Segments               int
	ClientSegments, DeviceSegments int
	Connections, SYNRetransmits    int
	ClientRSTs, DeviceRSTs         int
	IgnoredRSTs                    int
	AfterStop                      int
	Closers                        [closerCount]int
	Duels                          []*Duel
	FirstSegment, LastSegment      time.Time
	LastAfterStop                  time.Time
}

// NewSummary returns a Summary for a bench whose client and device have
// these addresses.
func NewSummary(client, device netip.Addr) (*Summary, error) {
	dec, err := segment.NewDecoder(layers.LinkTypeEthernet)
	if err != nil {
		return nil, err
	}
	return &Summary{client: client, device: device, dec: dec, tuples: map[segment.Tuple]*tupleState{}}, nil
}

// SetStop records when the client stopped; segments after it are counted
// apart.
func (s *Summary) SetStop(t time.Time) { s.stop = t }

// Stop returns when the client stopped (zero until SetStop).
func (s *Summary) Stop() time.Time { return s.stop }

// AddFrame tallies one Ethernet frame seen on the bridge at t.
func (s *Summary) AddFrame(t time.Time, frame []byte) {
	s.Frames++
	if s.dec.Decode(frame, &s.seg) != nil {
		return
	}
	s.AddSegment(t, &s.seg)
}

// AddSegment tallies one TCP segment seen at t.
func (s *Summary) AddSegment(t time.Time, seg *segment.Segment) {
	var from int
	var tup segment.Tuple
	switch {
	case seg.Src.Addr() == s.client && seg.Dst.Addr() == s.device:
		from, tup = 1, seg.Tuple()
	case seg.Src.Addr() == s.device && seg.Dst.Addr() == s.client:
		from, tup = 2, seg.Tuple().Reverse()
	default:
		return
	}
	s.Segments++
	if s.FirstSegment.IsZero() {
		s.FirstSegment = t
	}
	s.LastSegment = t
	if from == 1 {
		s.ClientSegments++
	} else {
		s.DeviceSegments++
	}
	afterStop := !s.stop.IsZero() && t.After(s.stop)
	if afterStop {
		s.AfterStop++
		s.LastAfterStop = t
	}
	st := s.tuples[tup]
	if st == nil {
		st = &tupleState{}
		s.tuples[tup] = st
	}
	f := seg.Flags
	if d := st.duel; d != nil && t.Sub(st.last) > duelIdle {
		st.duel = nil
	}
	st.last = t

	// A new incarnation starts with a client SYN of a new ISN.
	if from == 1 && f&segment.SYN != 0 && f&segment.ACK == 0 {
		if st.started && seg.Seq == st.isn {
			s.SYNRetransmits++
		} else {
			s.finish(st)
			// A RST of the last incarnation stays pending: the device may
			// still hold the old connection and ignore it.
			*st = tupleState{isn: seg.Seq, started: true, duel: st.duel, last: t,
				rstFrom: st.rstFrom, rstAt: st.rstAt, sinceRST: st.sinceRST,
				synsSinceRST: st.synsSinceRST, afterSinceRST: st.afterSinceRST}
			s.Connections++
		}
	}
	if from == 2 && f.Has(segment.SYN|segment.ACK) {
		st.synAcked = true
	}
	if f&segment.RST != 0 {
		if from == 1 {
			s.ClientRSTs++
		} else {
			s.DeviceRSTs++
		}
		if st.closer == CloserNone && !st.clientFIN && !st.deviceFIN && st.started {
			if from == 1 {
				st.closer = CloserClientRST
			} else {
				st.closer = CloserDeviceRST
			}
		}
	} else if st.rstFrom != 0 && st.rstFrom != from && f&segment.SYN == 0 && t.Sub(st.rstAt) > ignoredRSTGap {
		// The receiver of a RST sent again on the connection it reset
		// (not a SYN or SYN+ACK of a new one): the RST was ignored.
		s.IgnoredRSTs++
		if st.duel == nil {
			// The duel starts with the ignored RST: count what came since.
			st.duel = &Duel{Client: tup.Src, Device: tup.Dst, Start: st.rstAt,
				Segments: st.sinceRST, SYNs: st.synsSinceRST, AfterStop: st.afterSinceRST}
			s.Duels = append(s.Duels, st.duel)
		}
		st.duel.IgnoredRSTs++
		st.rstFrom = 0
	}
	if f&segment.RST != 0 {
		st.rstFrom, st.rstAt = from, t
		st.sinceRST, st.synsSinceRST, st.afterSinceRST = 0, 0, 0
	}
	st.sinceRST++
	if from == 1 && f&segment.SYN != 0 {
		st.synsSinceRST++
	}
	if afterStop {
		st.afterSinceRST++
	}
	if d := st.duel; d != nil {
		d.Segments++
		d.End = t
		if afterStop {
			d.AfterStop++
		}
		if from == 1 && f&segment.SYN != 0 {
			d.SYNs++
		}
		if from == 2 && f.Has(segment.SYN|segment.ACK) {
			st.duel = nil // the handshake got through: the duel is over
		}
	}
	if f&segment.FIN != 0 {
		end := seg.End()
		if from == 1 && !st.clientFIN {
			st.clientFIN, st.clientFINEnd = true, end
			if st.closer == CloserNone {
				if st.deviceFIN {
					if seg.Ack.LessThan(st.deviceFINEnd) {
						st.closer = CloserCrossed
					} else {
						st.closer = CloserDevice
					}
				}
			}
		}
		if from == 2 && !st.deviceFIN {
			st.deviceFIN, st.deviceFINEnd = true, end
			if st.closer == CloserNone && st.clientFIN {
				if seg.Ack.LessThan(st.clientFINEnd) {
					st.closer = CloserCrossed
				} else {
					st.closer = CloserClient
				}
			}
		}
	}
}

// finish files the closer of a tuple's incarnation.
func (s *Summary) finish(st *tupleState) {
	if !st.started {
		return
	}
	c := st.closer
	if !st.synAcked {
		c = CloserNoHandshake
	} else if c == CloserNone {
		switch {
		case st.deviceFIN && !st.clientFIN:
			c = CloserDevice
		case st.clientFIN && !st.deviceFIN:
			c = CloserClient
		}
	}
	s.Closers[c]++
}

// Close files the connections still open; call it once, when the run is
// over, before WriteTo.
func (s *Summary) Close() {
	for _, st := range s.tuples {
		s.finish(st)
		st.started = false
	}
}

// DuelSegments returns the segments in duels and how many of them came
// after the client stopped.
func (s *Summary) DuelSegments() (total, afterStop int) {
	for _, d := range s.Duels {
		total += d.Segments
		afterStop += d.AfterStop
	}
	return total, afterStop
}

// WriteTo writes the summary as text.
func (s *Summary) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "segments on the bridge: %d (client %d, device %d) in %d frames\n", s.Segments, s.ClientSegments, s.DeviceSegments, s.Frames)
	fmt.Fprintf(&b, "connections: %d (SYN retransmissions %d)\n", s.Connections, s.SYNRetransmits)
	var closers []string
	for c := Closer(0); c < closerCount; c++ {
		if s.Closers[c] > 0 {
			closers = append(closers, fmt.Sprintf("%s %d", c, s.Closers[c]))
		}
	}
	if len(closers) == 0 {
		closers = []string{"none"}
	}
	fmt.Fprintf(&b, "closed first by: %s\n", strings.Join(closers, ", "))
	fmt.Fprintf(&b, "RSTs: client %d, device %d, ignored %d\n", s.ClientRSTs, s.DeviceRSTs, s.IgnoredRSTs)
	if !s.stop.IsZero() {
		after := "none"
		if s.AfterStop > 0 {
			after = fmt.Sprintf("%d, the last %.3f s after", s.AfterStop, s.LastAfterStop.Sub(s.stop).Seconds())
		}
		fmt.Fprintf(&b, "segments after the client stopped: %s\n", after)
	}
	total, after := s.DuelSegments()
	fmt.Fprintf(&b, "duels: %d (%d segments, %d after the client stopped)\n", len(s.Duels), total, after)
	duels := append([]*Duel(nil), s.Duels...)
	sort.Slice(duels, func(i, j int) bool { return duels[i].Start.Before(duels[j].Start) })
	for _, d := range duels {
		at := "-"
		if !s.FirstSegment.IsZero() {
			at = fmt.Sprintf("+%.3fs", d.Start.Sub(s.FirstSegment).Seconds())
		}
		fmt.Fprintf(&b, "  %s <-> %s at %s for %.3f s: %d segments, %d ignored RSTs, %d client SYNs, %d after the client stopped\n",
			d.Client, d.Device, at, d.Duration().Seconds(), d.Segments, d.IgnoredRSTs, d.SYNs, d.AfterStop)
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}
