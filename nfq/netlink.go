package nfq

import (
	"encoding/binary"
	"errors"
)

// Netlink and nfnetlink_queue wire constants (linux/netlink.h,
// linux/netfilter/nfnetlink.h, linux/netfilter/nfnetlink_queue.h).
const (
	nlmsgHdrLen    = 16
	nfgenHdrLen    = 4
	nlaHdrLen      = 4
	nlmsgError     = 2
	nlmsgDone      = 3
	nlmFRequest    = 0x1
	nlmFAck        = 0x4
	nfnlSubsysQ    = 3
	nfqMsgPacket   = 0
	nfqMsgVerdict  = 1
	nfqMsgConfig   = 2
	nfqaPacketHdr  = 1
	nfqaVerdictHdr = 2
	nfqaMark       = 3
	nfqaIfIn       = 5
	nfqaIfOut      = 6
	nfqaIfPhysIn   = 7
	nfqaIfPhysOut  = 8
	nfqaHwAddr     = 9
	nfqaPayload    = 10
	nfqaCapLen     = 13
	nfqaSkbInfo    = 14

	nfqaCfgCmd         = 1
	nfqaCfgParams      = 2
	nfqaCfgQueueMaxLen = 3
	nfqaCfgMask        = 4
	nfqaCfgFlags       = 5
	cfgCmdBind         = 1
	cfgCmdUnbind       = 2

	cfgFlagFailOpen = 1 << 0
	cfgFlagGSO      = 1 << 2
	copyPacket      = 2

	skbInfoCsumNotReady = 1 << 0
	skbInfoGSO          = 1 << 1
)

func align4(n int) int { return (n + 3) &^ 3 }

// queuedPacket is what parseMessage extracts from one NFQNL_MSG_PACKET.
// Payload and HwAddr alias the receive buffer.
type queuedPacket struct {
	ID                             uint32
	InDev, OutDev, PhysIn, PhysOut uint32
	HwAddr                         []byte
	Payload                        []byte
	CapLen                         uint32 // full length when Payload was cut; 0 when whole
	SkbInfo                        uint32
	Mark                           uint32 // the firewall mark; 0 when the kernel sent none
}

var (
	errShortMsg   = errors.New("nfq: netlink message shorter than its header")
	errNotPacket  = errors.New("nfq: not a queued-packet message")
	errNoPacketID = errors.New("nfq: queued packet without a packet header")
)

// messageType returns the netlink type and length of the message at the
// start of buf (0, 0 when buf is too short).
func messageHeader(buf []byte) (typ uint16, length int) {
	if len(buf) < nlmsgHdrLen {
		return 0, 0
	}
	return binary.NativeEndian.Uint16(buf[4:6]), int(binary.NativeEndian.Uint32(buf[0:4]))
}

// parsePacket decodes one NFQNL_MSG_PACKET netlink message (with its
// header) into qp without allocating.
func parsePacket(msg []byte, qp *queuedPacket) error {
	typ, n := messageHeader(msg)
	if n < nlmsgHdrLen+nfgenHdrLen || n > len(msg) {
		return errShortMsg
	}
	if typ != nfnlSubsysQ<<8|nfqMsgPacket {
		return errNotPacket
	}
	*qp = queuedPacket{}
	seenHdr := false
	attrs := msg[nlmsgHdrLen+nfgenHdrLen : n]
	for len(attrs) >= nlaHdrLen {
		alen := int(binary.NativeEndian.Uint16(attrs[0:2]))
		atype := binary.NativeEndian.Uint16(attrs[2:4]) & 0x3fff
		if alen < nlaHdrLen || alen > len(attrs) {
			return errShortMsg
		}
		v := attrs[nlaHdrLen:alen]
		switch atype {
		case nfqaPacketHdr:
			if len(v) >= 4 {
				qp.ID = binary.BigEndian.Uint32(v[0:4])
				seenHdr = true
			}
		case nfqaIfIn, nfqaIfOut, nfqaIfPhysIn, nfqaIfPhysOut, nfqaCapLen, nfqaSkbInfo, nfqaMark:
			if len(v) < 4 {
				break
			}
			x := binary.BigEndian.Uint32(v[0:4])
			switch atype {
			case nfqaIfIn:
				qp.InDev = x
			case nfqaIfOut:
				qp.OutDev = x
			case nfqaIfPhysIn:
				qp.PhysIn = x
			case nfqaIfPhysOut:
				qp.PhysOut = x
			case nfqaCapLen:
				qp.CapLen = x
			case nfqaSkbInfo:
				qp.SkbInfo = x
			case nfqaMark:
				qp.Mark = x
			}
		case nfqaHwAddr:
			// struct nfqnl_msg_packet_hw { __be16 hw_addrlen; __u16 _pad; __u8 hw_addr[8]; }
			if len(v) >= 4 {
				l := int(binary.BigEndian.Uint16(v[0:2]))
				if l <= 8 && 4+l <= len(v) {
					qp.HwAddr = v[4 : 4+l]
				}
			}
		case nfqaPayload:
			qp.Payload = v
		}
		adv := align4(alen)
		if adv > len(attrs) {
			break
		}
		attrs = attrs[adv:]
	}
	if !seenHdr {
		return errNoPacketID
	}
	return nil
}

// appendVerdict appends one NFQNL_MSG_VERDICT message for packet id to buf;
// a non-nil payload replaces the packet's bytes.
func appendVerdict(buf []byte, queue uint16, id uint32, verdict uint32, payload []byte) []byte {
	total := nlmsgHdrLen + nfgenHdrLen + nlaHdrLen + 8
	if payload != nil {
		total += nlaHdrLen + align4(len(payload))
	}
	start := len(buf)
	buf = grow(buf, total)
	m := buf[start:]
	clear(m)
	binary.NativeEndian.PutUint32(m[0:4], uint32(total))
	binary.NativeEndian.PutUint16(m[4:6], nfnlSubsysQ<<8|nfqMsgVerdict)
	binary.NativeEndian.PutUint16(m[6:8], nlmFRequest)
	// nfgenmsg: family AF_UNSPEC, version 0, res_id = queue (big endian)
	binary.BigEndian.PutUint16(m[18:20], queue)
	a := m[nlmsgHdrLen+nfgenHdrLen:]
	binary.NativeEndian.PutUint16(a[0:2], nlaHdrLen+8)
	binary.NativeEndian.PutUint16(a[2:4], nfqaVerdictHdr)
	binary.BigEndian.PutUint32(a[4:8], verdict)
	binary.BigEndian.PutUint32(a[8:12], id)
	if payload != nil {
		p := a[12:]
		binary.NativeEndian.PutUint16(p[0:2], uint16(nlaHdrLen+len(payload)))
		binary.NativeEndian.PutUint16(p[2:4], nfqaPayload)
		copy(p[4:], payload)
	}
	return buf
}

// appendConfig appends one NFQNL_MSG_CONFIG request (with NLM_F_ACK) for
// the queue, with the given attributes already encoded.
func appendConfig(buf []byte, queue uint16, seq uint32, attrs []byte) []byte {
	total := nlmsgHdrLen + nfgenHdrLen + len(attrs)
	start := len(buf)
	buf = grow(buf, total)
	m := buf[start:]
	clear(m)
	binary.NativeEndian.PutUint32(m[0:4], uint32(total))
	binary.NativeEndian.PutUint16(m[4:6], nfnlSubsysQ<<8|nfqMsgConfig)
	binary.NativeEndian.PutUint16(m[6:8], nlmFRequest|nlmFAck)
	binary.NativeEndian.PutUint32(m[8:12], seq)
	binary.BigEndian.PutUint16(m[18:20], queue)
	copy(m[nlmsgHdrLen+nfgenHdrLen:], attrs)
	return buf
}

// appendAttr appends one netlink attribute with its padding.
func appendAttr(buf []byte, typ uint16, val []byte) []byte {
	start := len(buf)
	buf = grow(buf, nlaHdrLen+align4(len(val)))
	a := buf[start:]
	clear(a)
	binary.NativeEndian.PutUint16(a[0:2], uint16(nlaHdrLen+len(val)))
	binary.NativeEndian.PutUint16(a[2:4], typ)
	copy(a[nlaHdrLen:], val)
	return buf
}

// netlinkError returns the errno carried by an NLMSG_ERROR message (0 is
// an acknowledgment) and the sequence number it answers.
func netlinkError(msg []byte) (errno int32, seq uint32, ok bool) {
	typ, n := messageHeader(msg)
	if typ != nlmsgError || n < nlmsgHdrLen+4 || n > len(msg) {
		return 0, 0, false
	}
	return -int32(binary.NativeEndian.Uint32(msg[nlmsgHdrLen : nlmsgHdrLen+4])), binary.NativeEndian.Uint32(msg[8:12]), true
}

func grow(buf []byte, n int) []byte {
	if cap(buf)-len(buf) < n {
		nb := make([]byte, len(buf), 2*cap(buf)+n)
		copy(nb, buf)
		buf = nb
	}
	return buf[:len(buf)+n]
}
