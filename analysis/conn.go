package analysis

import (
	"github.com/closeduel/closeduel/segment"
	"github.com/closeduel/closeduel/tcpstate"
)

// dirState is what one direction of an incarnation has shown.
type dirState struct {
	segs int
	// synSeen: the direction sent a SYN (ACK clear).
	synSeen bool

	// Wireshark's sequence analysis of the direction (retransmissions).
	next      segment.Seq // highest seq+len sent so far (nextseq)
	nextTime  int64       // when next last advanced
	lastAck   segment.Seq // ack field of the last segment (lastack; 0: none)
	lastTime  int64       // time of the last segment
	rawWin    uint16      // window field of the last segment, unscaled
	rawWinSet bool
	dupAcks   uint32 // duplicate ACKs sent since the ack last changed
	keepAlive bool   // the last segment was a keep-alive
	// contig is the end of what the direction sent without a gap the
	// capture saw (maxseqtobeacked; 0: none).
	contig segment.Seq

	finSeen  bool
	finAcked bool
	// finAckSent: the direction sent an ACK of the other's FIN (delivered
	// or not).
	finAckSent bool
	finEnd     segment.Seq // seq just after the first FIN
	payload    int
}

// histMax is the longest history string; a '+' marks a cut.
const histMax = 48

// conn is what the analysis adds to one incarnation the tracker follows
// (its report layers) while it is live.
type conn struct {
	id    int
	tid   uint64        // the tracker's Conn.ID
	orig  segment.Tuple // orig → resp
	start int64
	last  int64
	// closed is when the connection ended for at least one side, as the
	// tracker has it (tcpstate.Conn.ClosedAt), closeByRST that an RST did
	// it.
	closed     int64
	closeByRST bool
	// finalAck is 1 + the index (in the tracker's Ends) of the endpoint
	// whose TIME-WAIT closed the incarnation, while its acknowledgment of
	// the FIN that put it there is still to come; 0 otherwise.
	finalAck int
	d        [2]dirState

	hist     [histMax]byte
	histLen  int
	lastTok  [4]byte // the last token appended
	lastTokN int
	prevTok  [4]byte // the one before it
	prevTokN int

	retrans, synRetrans, finRetrans, rsts, ignoredRSTs int

	anyFIN, anyRST, finBeforeRST bool
	closer                       Side
	synAcked, established        bool
	conflict, twReuse            bool // the tracker's Held and Reused
	inDuel                       bool
	// stallRetx[d] records a retransmission in direction d after both
	// endpoints had sent their FIN; stalled is set, while the incarnation
	// is not closed, by a retransmission once both directions have one:
	// both applications are done and the stacks cannot finish the close.
	stallRetx [2]bool
	stalled   bool

	// handshake times at the capture point
	synTime, synAckTime, ackTime int64
	// Wireshark's view of the handshake for its sequence analysis: the
	// time of the last SYN (either way) and the initial round trip.
	lastSynAt, firstRTT int64

	// a valid, delivered RST from side i whose receiver has not yet been
	// seen reacting
	rstPending     [2]bool
	rstPendingTime [2]int64

	// the last SYN the originator sent, for a duel that it turns out to
	// have started
	lastSyn     segment.Segment
	lastSynTime int64
	lastSynNote Note
}

// dir returns 0 for a segment from orig to resp, 1 for the reverse.
func (c *conn) dir(seg *segment.Segment) int {
	if seg.Src == c.orig.Src && seg.Dst == c.orig.Dst {
		return 0
	}
	return 1
}

// newConn starts the report layers of the tracker's incarnation tc with its
// first segment.
func newConn(id int, tc *tcpstate.Conn, seg *segment.Segment, t int64) *conn {
	c := &conn{id: id, tid: tc.ID, start: t, last: t}
	switch {
	case tc.Opener >= 0:
		c.orig = segment.Tuple{Src: tc.Ends[tc.Opener].Addr, Dst: tc.Ends[1-tc.Opener].Addr}
	case seg.Src.Port() < seg.Dst.Port():
		// Mid-stream: take the lower port for the server's.
		c.orig = seg.Tuple().Reverse()
	default:
		c.orig = seg.Tuple()
	}
	return c
}

// Thresholds of Wireshark's sequence analysis, in ns.
const (
	// oooDefault stands for the handshake's round trip when it is unknown.
	oooDefault = 3_000_000
	// fastRetransWindow is how soon after the peer's last segment one at
	// the ack it repeated is a fast retransmission.
	fastRetransWindow = 20_000_000
)

// dupAcksUnseen is Wireshark's -1 in its unsigned duplicate ACK count:
// it counts as two or more.
const dupAcksUnseen = ^uint32(0)

// seqCheck applies Wireshark 4.0's sequence analysis to a segment from
// side di and reports whether Wireshark flags it
// tcp.analysis.retransmission (a retransmission, fast or spurious).
// DEFINITIONS.md gives the rules. Like Wireshark it works on absolute
// sequence numbers and takes 0 for "none yet" (next, contig, lastAck).
func (c *conn) seqCheck(di int, seg *segment.Segment, now int64) (retrans bool) {
	s, o := &c.d[di], &c.d[1-di]
	f := seg.Flags
	seglen := uint32(seg.PayloadLen)
	// SYN or FIN count one, one only when both are set.
	end := seg.Seq.Add(seglen)
	if f.Any(segment.SYN | segment.FIN) {
		end = end.Add(1)
	}
	plain := !f.Any(segment.SYN | segment.FIN | segment.RST)
	if f&(segment.SYN|segment.ACK) == segment.SYN && s.contig != 0 {
		// A SYN again: next goes back to the end of what was sent
		// without a gap (its time stays).
		s.next = s.contig
	}

	// A zero-window probe (one octet at next while the peer's window is
	// closed) is no keep-alive or duplicate ACK and does not advance next.
	zwp := seglen == 1 && seg.Seq == s.next && o.rawWinSet && o.rawWin == 0
	keepAlive := false
	if !zwp {
		keepAlive = seglen <= 1 && plain && seg.Seq == s.next-1
		// A duplicate ACK: no payload, at next, with the direction's last
		// ack and (non-zero) window; not when it answers a keep-alive.
		if seglen == 0 && plain && seg.Window != 0 && s.rawWinSet && seg.Window == s.rawWin &&
			seg.Seq == s.next && seg.Ack == s.lastAck && !o.keepAlive {
			if s.dupAcks == dupAcksUnseen {
				s.dupAcks = 1
			} else {
				s.dupAcks++
			}
		}
	}
	if seg.Ack != s.lastAck {
		s.dupAcks = 0
	}
	// An ACK beyond what the other direction sent without a gap: when
	// that gap-free end is behind its next, it moves up to it; otherwise
	// the other direction's duplicate ACK count becomes "unseen".
	if f&segment.ACK != 0 && o.contig != 0 && o.contig.LessThan(seg.Ack) {
		if o.contig.LessThan(o.next) {
			o.contig = o.next
		} else {
			o.dupAcks = dupAcksUnseen
		}
	}

	if (seglen > 0 || f.Any(segment.SYN|segment.FIN)) && !keepAlive {
		notAdvanced := s.next != 0 && seg.Seq.LessThan(s.next)
		if seglen > 1 && seg.Seq == s.next-1 {
			notAdvanced = false
		}
		thr := c.firstRTT
		if thr == 0 {
			thr = oooDefault
		}
		switch {
		case seglen > 0 && o.lastAck != 0 && !o.lastAck.LessThan(seg.Seq.Add(seglen)):
			// Spurious: the receiver had acknowledged all of it.
			retrans = true
		case notAdvanced && o.dupAcks >= 2 && o.lastAck == seg.Seq && uint64(now-o.lastTime) < fastRetransWindow:
			// Fast: at the ack the receiver repeated. Like Wireshark's,
			// the gaps are unsigned: a time going backwards (a capture
			// appended to itself) makes them huge, not recent.
			retrans = true
		case notAdvanced && uint64(now-s.nextTime) < uint64(thr) && end != s.next:
			// Out of order: soon after next advanced, not ending at it.
		default:
			retrans = notAdvanced
		}
	}

	if !zwp && (s.next == 0 || s.next.LessThan(end)) {
		s.next, s.nextTime = end, now
	}
	if !zwp && (s.contig == 0 || seg.Seq == s.contig) {
		s.contig = s.next
	}
	s.lastAck, s.lastTime = seg.Ack, now
	s.rawWin, s.rawWinSet = seg.Window, true
	s.keepAlive = keepAlive
	return retrans
}

// rstGuard is how long after an RST seen at the capture point a segment
// from its receiver may still have been sent before the RST arrived: the
// round trip between the capture point and that receiver.
func (c *conn) rstGuard(receiver int) int64 {
	if receiver == 1 && c.synAckTime > c.synTime && c.synTime > 0 {
		return c.synAckTime - c.synTime
	}
	if receiver == 0 && c.ackTime > c.synAckTime && c.synAckTime > 0 {
		return c.ackTime - c.synAckTime
	}
	return 0
}

// token writes the history token of a segment into b and returns its
// length; DEFINITIONS.md lists the letters.
func token(b *[4]byte, seg *segment.Segment, di int, retrans, stale bool, note *Note) int {
	f := seg.Flags
	n := 0
	switch {
	case f&segment.RST != 0:
		b[n] = 'R'
	case f.Has(segment.SYN | segment.ACK):
		b[n] = 'H'
	case f&segment.SYN != 0:
		b[n] = 'S'
	case seg.PayloadLen > 0 && f&segment.FIN != 0:
		b[n] = 'D'
		n++
		b[n] = 'F'
	case seg.PayloadLen > 0:
		b[n] = 'D'
	case f&segment.FIN != 0:
		b[n] = 'F'
	case stale:
		b[n] = 'K'
	case f&segment.ACK != 0:
		b[n] = 'A'
	default:
		b[n] = 'N'
	}
	n++
	if retrans && n < 4 {
		b[n] = 'T'
		n++
	}
	if note.Drop && n < 4 {
		b[n] = 'X'
		n++
	} else if note.Kind == NoteInjected && n < 4 {
		b[n] = 'I'
		n++
	}
	if di == 1 {
		for i := range n {
			b[i] += 'a' - 'A'
		}
	}
	return n
}

// addHistory appends a token unless it repeats the last one appended or,
// while the connection is open, continues an alternation of plain data
// and ACK tokens ("DaDa..." stays "Da").
func (c *conn) addHistory(tok *[4]byte, n int) {
	same := func(b [4]byte, bn int) bool { return bn == n && b == *tok }
	if same(c.lastTok, c.lastTokN) {
		return
	}
	if c.closed == 0 && same(c.prevTok, c.prevTokN) && plainToken(tok, n) && plainToken(&c.lastTok, c.lastTokN) {
		return
	}
	c.prevTok, c.prevTokN = c.lastTok, c.lastTokN
	c.lastTok, c.lastTokN = *tok, n
	if c.histLen < 0 {
		return
	}
	if c.histLen+n > histMax-1 {
		c.hist[c.histLen] = '+'
		c.histLen = -(c.histLen + 1)
		return
	}
	copy(c.hist[c.histLen:], tok[:n])
	c.histLen += n
}

// plainToken reports a token of a plain data segment or pure ACK.
func plainToken(tok *[4]byte, n int) bool {
	if n != 1 {
		return false
	}
	switch tok[0] {
	case 'D', 'A', 'd', 'a':
		return true
	}
	return false
}

func (c *conn) history() string {
	n := c.histLen
	if n < 0 {
		n = -n
	}
	return string(c.hist[:n])
}

// update applies one segment from side di to the report layers of the
// incarnation, after the tracker (tc) took it, and returns whether it is a
// retransmission by Wireshark's rules. acceptable says an RST would be
// accepted by its receiver (asked before it arrived).
func (c *conn) update(di int, seg *segment.Segment, note *Note, now int64, tc *tcpstate.Conn, acceptable bool) (retrans bool) {
	s, o := &c.d[di], &c.d[1-di]
	f := seg.Flags
	delivered := !note.Drop
	c.last = now
	s.segs++
	s.payload += seg.PayloadLen

	retrans = c.seqCheck(di, seg, now)
	// Wireshark's initial round trip: from the last SYN to the first
	// segment with ACK and without SYN, either way (0 stays unknown).
	switch {
	case f&(segment.SYN|segment.ACK) == segment.SYN:
		c.lastSynAt = now
	case f&(segment.SYN|segment.ACK) == segment.ACK && c.lastSynAt != 0 && c.firstRTT == 0:
		c.firstRTT = now - c.lastSynAt
	}
	if retrans {
		c.retrans++
		if f&(segment.SYN|segment.ACK) == segment.SYN {
			c.synRetrans++
		}
		if f&segment.FIN != 0 {
			c.finRetrans++
		}
	}

	// The handshake's figures, from the tracker's initial sequence
	// numbers: the peer's is acknowledged exactly.
	from := tc.End(seg.Src)
	peer := &tc.Ends[1-from]
	acksPeerSYN := peer.SynSent && seg.Ack == peer.ISS.Add(1)
	switch {
	case f&(segment.SYN|segment.ACK|segment.RST) == segment.SYN:
		s.synSeen = true
		if di == 0 {
			if c.synTime == 0 {
				c.synTime = now
			}
			c.lastSyn, c.lastSynTime, c.lastSynNote = *seg, now, *note
		}
	case f&(segment.SYN|segment.ACK|segment.RST) == segment.SYN|segment.ACK:
		if acksPeerSYN && delivered && !c.synAcked {
			c.synAcked = true
			c.synAckTime = now
		}
	case f&(segment.ACK|segment.RST|segment.SYN) == segment.ACK:
		if di == 0 && c.synAcked && !c.established && acksPeerSYN && delivered {
			c.established = true
			c.ackTime = now
		}
	}
	c.conflict, c.twReuse = tc.Held, tc.Reused
	if c.closer == SideNone && tc.FirstCloser >= 0 {
		c.closer = SideOrig
		if tc.Ends[tc.FirstCloser].Addr != c.orig.Src {
			c.closer = SideResp
		}
	}

	if f&segment.FIN != 0 {
		c.anyFIN = true
		if !s.finSeen {
			s.finSeen = true
			s.finEnd = seg.End()
		}
	}
	if f&segment.ACK != 0 && o.finSeen && !seg.Ack.LessThan(o.finEnd) {
		s.finAckSent = true
		if delivered {
			o.finAcked = true
		}
	}

	// An earlier acceptable RST from the other side that this side keeps
	// sending after was ignored.
	if c.rstPending[1-di] && now-c.rstPendingTime[1-di] > c.rstGuard(di) {
		c.ignoredRSTs++
		c.rstPending[1-di] = false
	}
	if f&segment.RST != 0 {
		c.rsts++
		if !c.anyRST {
			c.finBeforeRST = c.anyFIN
		}
		c.anyRST = true
		if delivered && acceptable {
			c.rstPending[di], c.rstPendingTime[di] = true, now
		}
	}
	return retrans
}

// closeKind says how the incarnation ended.
func (c *conn) closeKind() CloseKind {
	switch {
	case c.anyRST && c.finBeforeRST:
		return CloseFINRST
	case c.anyRST:
		return CloseRST
	case c.d[0].finSeen && c.d[1].finSeen:
		return CloseFIN
	case c.anyFIN:
		return CloseHalfOpen
	}
	return CloseUnfinished
}

// failed reports a request that did not get through: the SYN was never
// answered by its SYN+ACK, or the connection was reset after the
// originator sent data and before the responder sent any.
func (c *conn) failed() bool {
	if c.d[0].synSeen && !c.synAcked {
		return true
	}
	return c.anyRST && c.d[0].payload > 0 && c.d[1].payload == 0
}
