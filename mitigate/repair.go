package mitigate

import (
	"github.com/closeduel/closeduel/segment"
	"github.com/closeduel/closeduel/tcpstate"
)

// final-ack-repair
//
// Mechanism: when the client's ACK of the device's FIN is lost, lwIP
// retransmits the FIN after about 3, 6, 12, 24, 48 and 96 s. Linux's
// TIME-WAIT acknowledges each (and each of those ACKs may be lost too);
// once the client's socket is gone the next FIN draws an RST. The device
// holds a pcb (of the ESP8266's five) in FIN-WAIT-1, CLOSING or LAST-ACK
// all that time.
//
// Fix: the tracker knows the client acknowledged the FIN (it saw the ACK
// go by) or that the client has no connection left (it answers with an
// RST from CLOSED). When the device retransmits a FIN the client already
// acknowledged, the repair drops that FIN and answers it with the ACK the
// client sent, in the client's name; when the client answers the device's
// unacknowledged FIN with an RST because its socket is gone, the repair
// keeps the RST from the device and answers in the client's name with the
// ACK (and the client's FIN, if the device never received one). The device
// then reaches TIME-WAIT or CLOSED. Once it has answered, it keeps the
// device's ACKs toward the closed client from drawing RSTs.

func (m *Mitigator) repair(seg *segment.Segment, res *tcpstate.Result, side Side, st *slotState) Outcome {
	de, ce := ends(res, side)
	cl := 1 - res.From
	if side == Client {
		cl = res.From
	}
	f := seg.Flags
	switch {
	case retransmitsAckedFIN(seg, res, side, de, ce):
		// The device retransmits a FIN the client acknowledged.
		return m.answer(de, ce, st)
	case side == Client && f&segment.RST != 0 && de.FinSent && !de.FinAcked && gone(res.Before[cl]):
		// A client with no connection answers the device's FIN.
		m.stats.KeptRSTs.Add(1)
		return m.answer(de, ce, st)
	case side == Device && st.repaired && f&(segment.SYN|segment.FIN|segment.RST) == 0 && seg.PayloadLen == 0 && gone(ce.State):
		// The device acknowledges the repair's FIN toward a client that
		// has no socket: it would only draw an RST.
		m.stats.KeptACKs.Add(1)
		return Outcome{By: FinalAckRepair, Acted: true, Drop: true}
	}
	return Outcome{}
}

// retransmitsAckedFIN reports whether seg is the device retransmitting a
// FIN that the client has acknowledged.
func retransmitsAckedFIN(seg *segment.Segment, res *tcpstate.Result, side Side, de, ce *tcpstate.Endpoint) bool {
	f := seg.Flags
	return side == Device && f&segment.FIN != 0 && f&(segment.RST|segment.SYN) == 0 && res.Events.Has(tcpstate.Retransmission) &&
		de.FinSent && ce.Rcv && de.FinSeq.LessThan(ce.RcvNxt)
}

// ends returns the device's and the client's endpoints of res.
func ends(res *tcpstate.Result, side Side) (de, ce *tcpstate.Endpoint) {
	dv, cl := res.From, 1-res.From
	if side == Client {
		dv, cl = cl, dv
	}
	return &res.Conn.Ends[dv], &res.Conn.Ends[cl]
}

// gone reports whether an endpoint in state s has no connection.
func gone(s tcpstate.State) bool { return s == tcpstate.Closed || s == tcpstate.Listen }

// answer drops the segment and acknowledges the device's FIN in the
// client's name, with the client's FIN when the device never received it
// and the client has none left to send (it sent it, or its socket is gone).
func (m *Mitigator) answer(de, ce *tcpstate.Endpoint, st *slotState) Outcome {
	if !ce.Sent && !ce.Rcv {
		return Outcome{}
	}
	tpl := segment.Template{
		Tuple:  segment.Tuple{Src: ce.Addr, Dst: de.Addr},
		Flags:  segment.ACK,
		Seq:    ce.SndNxt,
		Ack:    de.FinSeq.Add(1),
		Window: max(ce.RawWindow, 1),
	}
	if !de.FinReceived && (ce.FinSent || gone(ce.State)) {
		tpl.Flags |= segment.FIN
		if ce.FinSent {
			tpl.Seq = ce.FinSeq
		}
	}
	st.repaired = true
	m.stats.Repaired.Add(1)
	o := Outcome{By: FinalAckRepair, Acted: true, Drop: true}
	o.add(tpl)
	return o
}
