package tcpstate

import (
	"net/netip"
	"time"

	"github.com/closeduel/closeduel/segment"
)

// Endpoint is what the tracker infers about one end of a connection from
// the segments it sent and the segments delivered to it.
type Endpoint struct {
	// Addr is the endpoint's address and port.
	Addr netip.AddrPort
	// Since is when it entered State.
	Since Time
	// FinAt is when it first sent its FIN (FinSent).
	FinAt Time
	// RSTAt is when it last sent an RST (RSTSent).
	RSTAt Time

	// ISS is its initial sequence number, valid when SynSent is true.
	ISS segment.Seq
	// Base is its initial sequence number as an observer first learns it
	// (Wireshark's base_seq), valid when BaseSet: from its own first
	// segment (the sequence number, less one unless a SYN) or from the
	// first segment with ACK its peer sends (the ack less one), whichever
	// comes first. A SYN from it with another sequence number starts a new
	// incarnation.
	Base segment.Seq
	// SndNxt is one past the highest sequence number it has sent, valid
	// when Sent is true (RFC 9293's SND.NXT as an observer sees it, i.e.
	// including retransmitted ranges).
	SndNxt segment.Seq
	// RcvNxt is the next sequence number it expects from its peer: the
	// highest acknowledgment it sent, advanced by in-order segments
	// delivered to it. Valid when Rcv is true.
	RcvNxt segment.Seq
	// FinSeq is the sequence number of its FIN, valid when FinSent.
	FinSeq segment.Seq
	// Window is its last advertised receive window in octets (scaled when
	// both ends negotiated window scaling), RawWindow the raw field.
	Window    uint32
	RawWindow uint16

	// Segments counts the segments it sent, Retransmissions those of them
	// that were retransmissions, Fins those that carried a FIN (the first
	// and its retransmissions).
	Segments, Retransmissions, Fins uint32

	// Stack is the closing behaviour assumed for it.
	Stack Stack
	// State is its inferred state.
	State State
	// WScale is the window-scale shift it offered in its SYN, -1 for none.
	WScale int8

	// SynSent, BaseSet, Sent and Rcv say ISS, Base, SndNxt and RcvNxt are
	// valid. (The small fields come last, so that a Conn, which holds two
	// Endpoints, has no padding to speak of: 100k tracked connections.)
	SynSent, BaseSet, Sent, Rcv bool
	// FinSent: it sent a FIN (FinSeq, FinAt).
	FinSent bool
	// FinAcked: its peer acknowledged that FIN (as delivered to it).
	FinAcked bool
	// FinReceived: its peer's FIN was delivered to it.
	FinReceived bool
	// finInFlight: its peer's FIN was seen pass but had not reached it
	// when it last sent (see unreceiveFIN).
	finInFlight bool
	// RSTSent: it sent an RST in this incarnation (RSTAt).
	RSTSent bool
}

// Conn is one incarnation of a 4-tuple: from a SYN (or from the first
// segment seen, when picked up in the middle) until the next SYN that opens
// a new incarnation or the tracker forgets it.
type Conn struct {
	// ID identifies the incarnation; a new SYN on the same 4-tuple gets a
	// new ID. IDs start at 1 and are never reused by one Tracker.
	ID uint64
	// PrevID is the ID of the previous incarnation of the same 4-tuple, 0
	// when there was none that the tracker still remembered.
	PrevID uint64
	// Tuple is the canonical tuple: Ends[0] is Tuple.Src, Ends[1] Tuple.Dst.
	Tuple segment.Tuple
	Ends  [2]Endpoint
	// Start is when the incarnation began, Last when its last segment was
	// seen.
	Start, Last Time
	// FirstCloseAt is when FirstCloser closed.
	FirstCloseAt Time
	// ClosedAt is when an endpoint first reached TIME-WAIT or CLOSED after
	// the incarnation was synchronized (ESTABLISHED on either end); zero
	// while open. ClosedEnd is the index of that endpoint.
	ClosedAt Time
	// Incarnation counts the incarnations of this 4-tuple the tracker has
	// seen, starting at 1.
	Incarnation uint32
	// RSTs counts the RSTs seen in this incarnation.
	RSTs uint32
	// Opener is the index in Ends of the endpoint that sent the opening
	// SYN, -1 when the connection was picked up in the middle.
	Opener int8
	// FirstCloser is the index of the endpoint that first sent a FIN or an
	// aborting RST, -1 while neither has; FirstCloseRST says it was an RST.
	FirstCloser   int8
	FirstCloseRST bool
	ClosedEnd     int8
	// Reused says the incarnation reuses its 4-tuple while the other
	// endpoint still holds the previous incarnation: by the tracker's model
	// when the opening SYN came (TIME-WAIT for as long as that endpoint's
	// stack holds it, or a half-open connection), or as the other endpoint
	// shows by answering the SYN with a stale ACK (Held). The rules'
	// reuses-tuple and the analysis's time_wait_reuses are this.
	Reused bool
	// Held: the other endpoint answered the opener's SYN with a stale ACK
	// and has not accepted it with a SYN-ACK since: the incarnation is in
	// conflict with the one it holds.
	Held bool
	// Midstream says the connection was picked up after its handshake.
	Midstream bool
	// scaled: both ends offered window scaling in their SYNs.
	scaled bool
	// synced: an endpoint reached ESTABLISHED in this incarnation (an
	// endpoint carried over from the previous one closing is not this
	// one's close).
	synced bool
}

// End returns the index in Ends of the endpoint with address a, or -1.
func (c *Conn) End(a netip.AddrPort) int {
	switch a {
	case c.Ends[0].Addr:
		return 0
	case c.Ends[1].Addr:
		return 1
	}
	return -1
}

// Closed reports whether both endpoints are CLOSED, LISTEN or TIME-WAIT,
// i.e. neither holds a synchronized connection that expects more than a
// final acknowledgment.
func (c *Conn) Closed() bool {
	for i := range c.Ends {
		switch c.Ends[i].State {
		case Closed, Listen, TimeWait:
		default:
			return false
		}
	}
	return true
}

// setState moves endpoint i to s at now and notes the close time.
func (c *Conn) setState(i int, s State, now Time) {
	e := &c.Ends[i]
	if e.State == s {
		return
	}
	if s == Established {
		c.synced = true
	}
	if (s == TimeWait || s == Closed) && c.ClosedAt.IsZero() && c.synced && (e.State.Synchronized() || e.State == SynReceived) {
		c.ClosedAt, c.ClosedEnd = now, int8(i)
	}
	e.State = s
	e.Since = now
}

// noteClose records the first close of the incarnation.
func (c *Conn) noteClose(i int, rst bool, now Time) {
	if c.FirstCloser >= 0 {
		return
	}
	c.FirstCloser = int8(i)
	c.FirstCloseRST = rst
	c.FirstCloseAt = now
}

// timeWaitLen is how long an endpoint of stack s stays in TIME-WAIT.
func timeWaitLen(s Stack, cfg *Config) time.Duration {
	if s < NumStacks {
		return cfg.TimeWait[s]
	}
	return 2 * cfg.MSL
}

// startsNew reports whether a SYN (ACK and RST clear) from end from opens
// a new incarnation: its sender's initial sequence number is known (Base)
// and the SYN's differs from it. This is Wireshark's rule for a new
// tcp.stream ("TCP port numbers reused").
func (c *Conn) startsNew(from int, seg *segment.Segment) bool {
	e := &c.Ends[from]
	return e.BaseSet && seg.Seq != e.Base
}

// noteBase records the initial sequence numbers seg, sent by end i,
// reveals (Endpoint.Base).
func (c *Conn) noteBase(i int, seg *segment.Segment) {
	e, p := &c.Ends[i], &c.Ends[1-i]
	if !e.BaseSet {
		e.Base, e.BaseSet = seg.Seq, true
		if seg.Flags&segment.SYN == 0 {
			e.Base--
		}
	}
	if !p.BaseSet && seg.Flags&segment.ACK != 0 {
		p.Base, p.BaseSet = seg.Ack-1, true
	}
}

// MaySend reports whether an endpoint of the incarnation is in a state
// from which its stack still sends by itself (retransmits a SYN, data or a
// FIN, or sends its own): anything but CLOSED, LISTEN and TIME-WAIT. A
// connection where neither may is settled: what comes next on its tuple is
// a new episode.
func (c *Conn) MaySend() bool {
	for i := range c.Ends {
		switch c.Ends[i].State {
		case Closed, Listen, TimeWait:
		default:
			return true
		}
	}
	return false
}

// Acceptable reports whether an RST delivered to end i would be accepted
// by RFC 9293 with RFC 5961: it carries exactly the next sequence number
// the end expects, or, in SYN-SENT, acknowledges its SYN. (lwIP's
// TIME-WAIT still ignores it, per RFC 1337.)
func (c *Conn) Acceptable(i int, seg *segment.Segment) bool {
	e := &c.Ends[i]
	if e.State == SynSent {
		return seg.Flags&segment.ACK != 0 && e.SynSent && seg.Ack == e.ISS.Add(1)
	}
	return !e.Rcv || seg.Seq == e.RcvNxt
}

// heldOpen reports whether a stack may keep the endpoint's state with no
// timer of its own running out: ESTABLISHED and CLOSE-WAIT wait for their
// application or their peer, and so does a FIN-WAIT-2 that its stack never
// times out.
func (e *Endpoint) heldOpen() bool {
	switch e.State {
	case Established, CloseWait:
		return true
	case FinWait2:
		return finWait2Len(e.Stack) == 0
	}
	return false
}

// finWait2Len is how long an orphaned FIN-WAIT-2 lasts; 0 means forever.
func finWait2Len(s Stack) time.Duration {
	switch s {
	case Linux:
		return 60 * time.Second
	case LwIP:
		return 20 * time.Second
	}
	return 0
}

// age applies the timers that ran out before now.
func (c *Conn) age(now Time, cfg *Config) {
	for i := range c.Ends {
		e := &c.Ends[i]
		switch e.State {
		case TimeWait:
			if now.Sub(e.Since) >= timeWaitLen(e.Stack, cfg) {
				c.setState(i, Closed, e.Since.Add(timeWaitLen(e.Stack, cfg)))
			}
		case FinWait2:
			if l := finWait2Len(e.Stack); l > 0 && now.Sub(e.Since) >= l {
				c.setState(i, Closed, e.Since.Add(l))
			}
		}
	}
}

// window returns the receive window a segment from an endpoint advertises.
func (c *Conn) window(e *Endpoint, seg *segment.Segment) uint32 {
	w := uint32(seg.Window)
	if c.scaled && seg.Flags&segment.SYN == 0 && e.WScale > 0 {
		w <<= uint(e.WScale)
	}
	return w
}

// sent applies what sending seg tells about endpoint i (the sender) and
// classifies the segment. The incarnation has already been chosen.
func (c *Conn) sent(i int, seg *segment.Segment, now Time) Event {
	e, p := &c.Ends[i], &c.Ends[1-i]
	var ev Event
	if c.RSTs > 0 {
		ev |= AfterRST
	}
	f := seg.Flags
	e.Segments++
	if f&segment.FIN != 0 && f&segment.RST == 0 {
		e.Fins++
	}
	c.Last = now
	c.noteBase(i, seg)

	if f&segment.SYN != 0 {
		switch {
		case e.SynSent && seg.Seq == e.ISS && !(f&segment.ACK != 0 && e.State == SynSent):
			ev |= Retransmission
			e.Retransmissions++
		case f&segment.ACK != 0 && e.SynSent && seg.Seq != e.ISS:
			// A SYN-ACK with a new ISS: a new TCB answers a SYN that
			// reused the tuple (Linux accepts one in TIME-WAIT).
			*e = Endpoint{Addr: e.Addr, Stack: e.Stack, State: e.State, Since: e.Since,
				Segments: e.Segments, Retransmissions: e.Retransmissions}
		}
		if !e.SynSent {
			e.ISS, e.SynSent = seg.Seq, true
			e.WScale = seg.WindowScale
			e.Sent = false
			if f&segment.ACK != 0 && p.WScale >= 0 && e.WScale >= 0 {
				c.scaled = true
			}
		}
		if c.Reused && f&segment.ACK == 0 {
			ev |= ReusesTuple
		}
	} else if e.Sent && f&segment.RST == 0 {
		// Retransmission or keep-alive: sequence space sent before.
		switch {
		case f&segment.FIN == 0 && seg.PayloadLen <= 1 && seg.Seq == e.SndNxt.Add(^uint32(0)):
			ev |= KeepAlive
		case seg.SeqLen() > 0 && seg.End().LessThanEq(e.SndNxt):
			ev |= Retransmission
			e.Retransmissions++
		}
	}
	if f&segment.RST == 0 && (!e.Sent || e.SndNxt.LessThan(seg.End())) {
		// An RST's sequence number is whatever the segment it answers
		// asked for, not sequence space its sender used.
		e.SndNxt, e.Sent = seg.End(), true
	}
	if f&segment.RST == 0 {
		e.RawWindow = seg.Window
		e.Window = c.window(e, seg)
	}

	if f&segment.ACK != 0 && f&segment.RST == 0 && e.FinReceived && p.FinSent && seg.Ack.LessThanEq(p.FinSeq) {
		// The sender does not acknowledge the FIN the tracker saw
		// delivered to it: it sent this before that FIN arrived, which was
		// still on its way (the two crossed between the middlebox and the
		// sender). Take the delivery back; the sender's later
		// acknowledgment of the FIN will apply it.
		c.unreceiveFIN(i)
	}
	if f&(segment.ACK|segment.SYN|segment.RST) == segment.ACK && int(c.Opener) == 1-i && p.State == SynSent &&
		p.SynSent && !(p.ISS.LessThan(seg.Ack) && seg.Ack.LessThanEq(p.SndNxt)) {
		// An ACK of something the opener never sent in this incarnation,
		// in answer to its SYN: the sender still holds the tuple (lwIP's
		// TIME-WAIT always, Linux's when the SYN is not acceptable).
		ev |= StaleAck
		c.Reused, c.Held = true, true
		// Its acknowledgment is what it expects next of the old
		// incarnation.
		e.RcvNxt, e.Rcv = seg.Ack, true
		if e.State == Closed || e.State == Listen {
			// The tracker had it free (its TIME-WAIT outlived the
			// assumed length, or it was never seen closing): it holds
			// TIME-WAIT after all.
			c.setState(i, TimeWait, now)
		}
	}
	if f&segment.ACK != 0 && f&segment.RST == 0 {
		if !e.Rcv || e.RcvNxt.LessThan(seg.Ack) {
			e.RcvNxt, e.Rcv = seg.Ack, true
		}
		if p.SynSent && seg.Ack == p.ISS.Add(1) {
			ev |= AcksSYN
			if f&segment.SYN != 0 {
				// A SYN-ACK accepts the SYN: no conflict any more.
				c.Held = false
			}
		}
		if p.FinSent && p.FinSeq.LessThan(seg.Ack) {
			ev |= AcksFIN
			// The sender acknowledges its peer's FIN: it has received
			// it, even if the tracker did not see it delivered.
			if !e.FinReceived {
				c.receiveFIN(i, now)
			}
		}
		switch {
		case e.State == SynSent && p.SynSent && f&segment.SYN == 0 && seg.Ack == p.ISS.Add(1):
			// The third packet of the handshake: the SYN-ACK reached it.
			c.setState(i, Established, now)
		case e.State == SynReceived && f&segment.SYN == 0:
			// A SYN-RECEIVED end sends nothing but its SYN-ACK until the
			// handshake's last ACK reached it.
			c.setState(i, Established, now)
		}
	}

	switch {
	case f&segment.RST != 0:
		c.RSTs++
		e.RSTSent, e.RSTAt = true, now
		switch e.State {
		case SynSent, Closed, Listen:
			// A reply to an unacceptable segment: the sender keeps its
			// state (RFC 9293 3.10.7.3, and any segment to a closed port).
		default:
			c.noteClose(i, true, now)
			c.setState(i, Closed, now)
		}
	case f&segment.SYN != 0 && f&segment.ACK != 0:
		if ev&Retransmission == 0 {
			switch e.State {
			case Listen, Closed, TimeWait, SynSent:
				e.FinSent, e.FinAcked, e.FinReceived, e.RSTSent = false, false, false, false
				c.setState(i, SynReceived, now)
			}
		}
	case f&segment.SYN != 0:
		if e.State != SynSent {
			c.setState(i, SynSent, now)
		}
	}
	if f&segment.FIN != 0 && f&segment.RST == 0 && ev&Retransmission == 0 && !e.FinSent {
		e.FinSent, e.FinSeq, e.FinAt = true, seg.End().Add(^uint32(0)), now
		c.noteClose(i, false, now)
		switch e.State {
		case Established, SynReceived:
			c.setState(i, FinWait1, now)
		case CloseWait:
			c.setState(i, LastAck, now)
		case SynSent:
			c.setState(i, Closed, now)
		}
	}
	return ev
}

// receiveFIN applies the delivery of the peer's FIN to endpoint i.
func (c *Conn) receiveFIN(i int, now Time) {
	e := &c.Ends[i]
	if e.FinReceived {
		if e.State == TimeWait {
			// A retransmitted FIN restarts the TIME-WAIT timer (RFC 9293
			// 3.10.7.4, lwIP tcp_timewait_input, Linux).
			e.Since = now
		}
		return
	}
	e.FinReceived, e.finInFlight = true, false
	switch e.State {
	case Established, SynReceived:
		c.setState(i, CloseWait, now)
	case FinWait1:
		if e.FinAcked {
			c.setState(i, TimeWait, now)
		} else {
			c.setState(i, Closing, now)
		}
	case FinWait2:
		c.setState(i, TimeWait, now)
	}
}

// unreceiveFIN undoes receiveFIN for endpoint i.
func (c *Conn) unreceiveFIN(i int) {
	e, p := &c.Ends[i], &c.Ends[1-i]
	e.FinReceived, e.finInFlight = false, true
	if e.Rcv && p.FinSeq.LessThan(e.RcvNxt) {
		e.RcvNxt = p.FinSeq
	}
	var back State
	switch e.State {
	case CloseWait:
		back = Established
	case Closing:
		back = FinWait1
	case TimeWait:
		back = FinWait2
		if !e.FinAcked {
			back = FinWait1
		}
	default:
		return
	}
	// Not setState: the endpoint was never really in the later state, so
	// neither its Since nor the connection's ClosedAt may change for it.
	e.State = back
}

// deliver applies the arrival of seg, sent by endpoint 1-i, at endpoint i.
func (c *Conn) deliver(i int, seg *segment.Segment, now Time) {
	e := &c.Ends[i]
	f := seg.Flags
	if f&segment.RST != 0 {
		c.deliverRST(i, seg, now)
		return
	}
	if f&segment.SYN != 0 {
		switch {
		case f&segment.ACK == 0:
			// A SYN at a listener is answered by a SYN-ACK we will see;
			// at a synchronized or TIME-WAIT end it draws an ACK (or an
			// RST, or is taken as a new connection by Linux's TIME-WAIT);
			// the reply tells which. Only a listener learns the peer's ISS.
			if e.State == Listen || e.State == Closed {
				e.RcvNxt, e.Rcv = seg.Seq.Add(1), true
			}
		case e.State == SynSent && e.SynSent && seg.Ack == e.ISS.Add(1):
			e.RcvNxt, e.Rcv = seg.Seq.Add(1), true
			c.setState(i, Established, now)
		}
		return
	}
	if e.State == Closed || e.State == Listen || e.State == SynSent {
		// No connection to deliver to: the endpoint answers with an RST
		// (or, in SYN-SENT, an RST for an unacceptable ACK).
		return
	}
	if e.finInFlight && c.Ends[1-i].FinSeq.LessThan(seg.Seq) {
		// Sent after the FIN that was on its way: the FIN got there first.
		c.receiveFIN(i, now)
	}
	if f&segment.ACK != 0 {
		if e.State == SynReceived && e.SynSent && e.ISS.LessThan(seg.Ack) && seg.Ack.LessThanEq(e.SndNxt) {
			c.setState(i, Established, now)
		}
		if e.FinSent && !e.FinAcked && e.FinSeq.LessThan(seg.Ack) && seg.Ack.LessThanEq(e.SndNxt) {
			e.FinAcked = true
			switch e.State {
			case FinWait1:
				c.setState(i, FinWait2, now)
			case Closing:
				c.setState(i, TimeWait, now)
			case LastAck:
				c.setState(i, Closed, now)
			}
		}
	}
	if e.State == Closed {
		return
	}
	inOrder := !e.Rcv || seg.Seq.LessThanEq(e.RcvNxt)
	if inOrder && (!e.Rcv || e.RcvNxt.LessThan(seg.End())) {
		e.RcvNxt, e.Rcv = seg.End(), true
	}
	if f&segment.FIN != 0 && inOrder {
		c.receiveFIN(i, now)
	}
}

// deliverRST applies the arrival of an RST at endpoint i.
func (c *Conn) deliverRST(i int, seg *segment.Segment, now Time) {
	e := &c.Ends[i]
	exact := !e.Rcv || seg.Seq == e.RcvNxt
	inWindow := !e.Rcv || seg.Seq.InWindow(e.RcvNxt, max(e.Window, 1))
	switch e.State {
	case Closed, Listen:
		// An RST for nothing is ignored.
	case SynSent:
		// Acceptable only when it acknowledges the SYN (RFC 9293 3.10.7.3).
		if seg.Flags&segment.ACK != 0 && e.SynSent && seg.Ack == e.ISS.Add(1) {
			c.setState(i, Closed, now)
		}
	case SynReceived:
		if inWindow {
			c.setState(i, Closed, now)
		}
	case TimeWait:
		// lwIP ignores every RST in TIME-WAIT (RFC 1337); Linux (with
		// tcp_rfc1337=0) and RFC 9293 end TIME-WAIT on an exact one.
		if e.Stack != LwIP && exact {
			c.setState(i, Closed, now)
		}
	default:
		// RFC 5961 3.2: an exact RST resets; one merely in the window draws
		// a challenge ACK and changes nothing.
		if exact {
			c.setState(i, Closed, now)
		}
	}
}
