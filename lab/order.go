package lab

import (
	"net/netip"
	"sync"

	"github.com/closeduel/closeduel/segment"
	"github.com/gopacket/gopacket/layers"
)

// orderCheck counts the segments the bench delivered out of order: the
// lab's own capture of the bridge, as the hosts sent the frames, should
// show every flow in the order its sender sent it (see "Pinning" in
// README.md). A segment is out of order when, in its direction of its
// incarnation, it acknowledges less than an earlier segment did, or it
// starts below sequence space already seen without being a copy of a
// segment seen before (a retransmission). It is safe for concurrent use.
type orderCheck struct {
	mu    sync.Mutex
	dec   *segment.Decoder
	seg   segment.Segment
	flows map[[2]netip.AddrPort]*flowOrder
	bad   int
}

type flowOrder struct {
	ack, end segment.Seq
	hasAck   bool
	seen     [][2]segment.Seq // (seq, end) of segments with sequence space, the last 32
}

func newOrderCheck() *orderCheck {
	dec, _ := segment.NewDecoder(layers.LinkTypeEthernet)
	return &orderCheck{dec: dec, flows: map[[2]netip.AddrPort]*flowOrder{}}
}

// add checks one frame of the capture.
func (o *orderCheck) add(data []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.dec == nil || o.dec.Decode(data, &o.seg) != nil {
		return
	}
	s := &o.seg
	key := [2]netip.AddrPort{s.Src, s.Dst}
	f := o.flows[key]
	if f == nil || s.Flags&segment.SYN != 0 {
		if len(o.flows) > 65536 {
			clear(o.flows)
		}
		f = &flowOrder{}
		o.flows[key] = f
	}
	if s.Flags&segment.RST != 0 {
		return
	}
	if s.Flags&segment.ACK != 0 {
		if f.hasAck && s.Ack.LessThan(f.ack) {
			o.bad++
			return
		}
		f.ack, f.hasAck = s.Ack, true
	}
	end := s.End()
	if end == s.Seq {
		return
	}
	if len(f.seen) > 0 && s.Seq.LessThan(f.end) {
		copyOf := false
		for _, r := range f.seen {
			if r[0] == s.Seq {
				copyOf = true
				break
			}
		}
		if !copyOf {
			o.bad++
		}
	}
	if len(f.seen) == 0 || f.end.LessThan(end) {
		f.end = end
	}
	if len(f.seen) == 32 {
		f.seen = f.seen[1:]
	}
	f.seen = append(f.seen, [2]segment.Seq{s.Seq, end})
}

// outOfOrder returns the count so far.
func (o *orderCheck) outOfOrder() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.bad
}
