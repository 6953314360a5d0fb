package mitigate

import (
	"net/netip"
	"time"

	"github.com/closeduel/closeduel/segment"
	"github.com/closeduel/closeduel/tcpstate"
)

// timewait-guard
//
// Mechanism: lwIP keeps a 4-tuple it closed first in TIME-WAIT for 2·MSL
// (120 s) and answers a new SYN on it with an ACK of the old connection;
// Linux, in SYN-SENT, answers that ACK with an RST, which lwIP ignores (RFC
// 1337), and retransmits its SYN until TIME-WAIT ends or it gives up. A
// client with a narrow port range, or one that wraps its range, meets this
// as a connection that hangs for up to two minutes.
//
// Fix: when the client sends a SYN on a tuple whose device end the
// tracker holds in TIME-WAIT, the guard picks a source port the device
// holds nothing on (GuardLow..GuardHigh) and rewrites that connection's
// segments: the client's source port on the way in, the destination port
// on the way back. The device sees a fresh 4-tuple and answers with a
// SYN+ACK; the client never sees the other port. The tracker, the rules
// and the verdict log see the device's side (the moved port). The mapping
// is let go when the client opens the next connection on its tuple and
// the moved one is done, or when the tracker forgets the moved one.

// Move is what timewait-guard did to one segment: small, since it is
// returned for every segment.
type Move struct {
	// Acted: the segment belongs to a moved connection.
	Acted bool
	// Rewrote says in words what was rewritten.
	Rewrote string
	// restore is the client's own port a device>client segment leaves
	// with, view the port the device uses (Restore applies them).
	restore, view uint16
}

// mapping is one moved connection.
type mapping struct {
	client netip.AddrPort // the client's own address and port
	device netip.AddrPort
	port   uint16      // the port the device sees
	iss    segment.Seq // the ISS of the SYN that opened it
}

// Messages for the verdict log's rewrote field.
const (
	rewroteMoved    = "timewait-guard: client port moved off the device's TIME-WAIT tuple"
	rewroteRestored = "timewait-guard: client port restored"
)

// Translate runs timewait-guard on a segment before the tracker sees it.
// A client>device segment of a moved connection is rewritten in pkt and
// seg at once (the tracker sees the moved port); a device>client one is
// left as it is and Restore, called once the segment is tracked and
// decided, gives it the client's port. tr is the tracker, read only.
func (m *Mitigator) Translate(pkt []byte, seg *segment.Segment, side Side, tr *tcpstate.Tracker, now time.Time) Move {
	switch side {
	case Client:
		return m.fromClient(pkt, seg, tr, now)
	case Device:
		if len(m.maps) == 0 {
			return Move{}
		}
		for i := range m.maps {
			e := &m.maps[i]
			if e.port == seg.Dst.Port() && e.device == seg.Src && e.client.Addr() == seg.Dst.Addr() {
				return Move{Acted: true, Rewrote: rewroteRestored, restore: e.client.Port(), view: e.port}
			}
		}
	}
	return Move{}
}

// Restore gives a device>client segment of a moved connection the
// client's port (o is what Translate returned for it); it returns the
// port the verdict log should show instead, or 0 when it changed nothing.
func (m *Mitigator) Restore(pkt []byte, seg *segment.Segment, o *Move) uint16 {
	if o.restore == 0 {
		return 0
	}
	if segment.SetDstPort(pkt, seg, o.restore) != nil {
		return 0
	}
	m.stats.Translated.Add(1)
	return o.view
}

func synOnly(f segment.Flags) bool {
	return f&segment.SYN != 0 && f&(segment.ACK|segment.RST) == 0
}

func (m *Mitigator) fromClient(pkt []byte, seg *segment.Segment, tr *tcpstate.Tracker, now time.Time) Move {
	syn := synOnly(seg.Flags)
	for i := range m.maps {
		e := &m.maps[i]
		if e.client != seg.Src || e.device != seg.Dst {
			continue
		}
		if syn && seg.Seq != e.iss && m.done(e, tr) {
			m.release(i)
			break
		}
		return m.move(pkt, seg, e.port)
	}
	if !syn || !m.sw.load().Has(TimewaitGuard) {
		return Move{}
	}
	c, _ := tr.Lookup(seg.Tuple())
	if c == nil {
		return Move{}
	}
	d := c.End(seg.Dst)
	if d < 0 || !tr.InTimeWait(&c.Ends[d], now) {
		return Move{}
	}
	if len(m.maps) == cap(m.maps) && !m.reclaim(tr) {
		m.stats.Full.Add(1)
		return Move{}
	}
	port, ok := m.freePort(seg.Src.Addr(), seg.Dst, tr, now)
	if !ok {
		m.stats.Full.Add(1)
		return Move{}
	}
	m.maps = append(m.maps, mapping{client: seg.Src, device: seg.Dst, port: port, iss: seg.Seq})
	m.stats.Moved.Add(1)
	return m.move(pkt, seg, port)
}

// move rewrites a client>device segment's source port.
func (m *Mitigator) move(pkt []byte, seg *segment.Segment, port uint16) Move {
	if segment.SetSrcPort(pkt, seg, port) != nil {
		return Move{}
	}
	m.stats.Translated.Add(1)
	return Move{Acted: true, Rewrote: rewroteMoved}
}

// done reports whether the moved connection of e is over: the tracker
// forgot it, or both its ends are closed (TIME-WAIT included).
func (m *Mitigator) done(e *mapping, tr *tcpstate.Tracker) bool {
	c, _ := tr.Lookup(segment.Tuple{Src: netip.AddrPortFrom(e.client.Addr(), e.port), Dst: e.device})
	return c == nil || c.Closed()
}

// release lets mapping i go.
func (m *Mitigator) release(i int) {
	last := len(m.maps) - 1
	m.maps[i] = m.maps[last]
	m.maps = m.maps[:last]
	m.stats.Released.Add(1)
}

// reclaim releases the mappings whose connections are done; it reports
// whether it freed any.
func (m *Mitigator) reclaim(tr *tcpstate.Tracker) bool {
	freed := false
	for i := 0; i < len(m.maps); {
		if m.done(&m.maps[i], tr) {
			m.release(i)
			freed = true
			continue
		}
		i++
	}
	return freed
}

// freePort finds a port in the guard's range on which the device holds
// nothing toward client and that no mapping uses.
func (m *Mitigator) freePort(client netip.Addr, device netip.AddrPort, tr *tcpstate.Tracker, now time.Time) (uint16, bool) {
	span := int(m.cfg.GuardHigh-m.cfg.GuardLow) + 1
probe:
	for range min(span, maxProbes) {
		port := m.cfg.GuardLow + uint16(m.cursor%span)
		m.cursor = (m.cursor + 1) % span
		for i := range m.maps {
			if e := &m.maps[i]; e.port == port && e.device == device && e.client.Addr() == client {
				continue probe
			}
		}
		c, _ := tr.Lookup(segment.Tuple{Src: netip.AddrPortFrom(client, port), Dst: device})
		if c != nil {
			if d := c.End(device); d >= 0 && tr.Holds(&c.Ends[d], now) {
				continue
			}
		}
		return port, true
	}
	return 0, false
}
