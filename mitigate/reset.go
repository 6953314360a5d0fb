package mitigate

import (
	"github.com/closeduel/closeduel/segment"
	"github.com/closeduel/closeduel/tcpstate"
)

// fin-reset
//
// Mechanism: a device too busy at close to take in the acknowledgment of
// its own FIN (the lab's busy-close) retransmits that FIN with back-off
// for minutes; Linux's TIME-WAIT acknowledges each, and each is lost on
// the device's side, until Linux's TIME-WAIT is over and an RST ends it.
// final-ack-repair's ACK is not taken in either.
//
// Fix: when the device retransmits a FIN the client acknowledged (or the
// client retransmits its FIN, which carried that acknowledgment: the
// device took in neither), the reset drops the retransmission and sends
// the device, in the client's name, an RST at exactly the sequence number
// it expects next: the retransmitted FIN's acknowledgment number (for a
// client FIN, its sequence number, then the one after it, since the device
// may have taken the FIN in). lwIP 2.1 accepts an RST only at that number
// (tcp_in.c, tcp_process), and does in FIN-WAIT-1, CLOSING and LAST-ACK:
// the pcb is freed. (In TIME-WAIT it ignores every RST, RFC 1337; a device
// in TIME-WAIT sends no FIN.) A client FIN still unacknowledged is then
// acknowledged in the device's name, so the client reaches TIME-WAIT
// rather than retransmitting it into the closed port. With final-ack-repair
// also on, the reset takes these cases: the repair's ACK and a later RST
// would be a ping-pong of their own (measured: a 4-segment duel).

func (m *Mitigator) reset(seg *segment.Segment, res *tcpstate.Result, side Side, st *slotState) Outcome {
	de, ce := ends(res, side)
	switch {
	case retransmitsAckedFIN(seg, res, side, de, ce) && seg.Flags&segment.ACK != 0:
		// The device tells the number it expects: its FIN's ACK field.
		o := Outcome{By: FinReset, Acted: true, Drop: true}
		o.add(segment.Template{Tuple: seg.Tuple().Reverse(), Flags: segment.RST, Seq: seg.Ack})
		m.closeClient(&o, de, ce)
		st.repaired = true
		m.stats.Resets.Add(1)
		return o
	case side == Client && seg.Flags&segment.FIN != 0 && seg.Flags&(segment.RST|segment.SYN) == 0 &&
		res.Events.Has(tcpstate.Retransmission) && ce.FinSent && seg.End().Add(^uint32(0)) == ce.FinSeq &&
		de.FinSent && ce.Rcv && de.FinSeq.LessThan(ce.RcvNxt) && !ce.FinAcked:
		// The client retransmits its FIN, which carried the ACK of the
		// device's FIN: the device took in neither. It expects the
		// client's FIN, or (if it took the FIN but lost the rest) the
		// number after it: the RST at the first, then at the second.
		o := Outcome{By: FinReset, Acted: true, Drop: true}
		o.add(segment.Template{Tuple: seg.Tuple(), Flags: segment.RST, Seq: ce.FinSeq})
		o.add(segment.Template{Tuple: seg.Tuple(), Flags: segment.RST, Seq: ce.FinSeq.Add(1)})
		m.closeClient(&o, de, ce)
		st.repaired = true
		m.stats.Resets.Add(1)
		return o
	}
	return Outcome{}
}

// closeClient adds, when the client's FIN is still unacknowledged, the
// device's ACK of it in the device's name, so the client reaches
// TIME-WAIT instead of retransmitting its FIN into a closed port.
func (m *Mitigator) closeClient(o *Outcome, de, ce *tcpstate.Endpoint) {
	if !ce.FinSent || ce.FinAcked || !de.Sent {
		return
	}
	o.add(segment.Template{Tuple: segment.Tuple{Src: de.Addr, Dst: ce.Addr}, Flags: segment.ACK,
		Seq: de.SndNxt, Ack: ce.FinSeq.Add(1), Window: max(de.RawWindow, 1)})
}
