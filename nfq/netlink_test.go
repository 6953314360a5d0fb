package nfq

import (
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// packetMessage builds an NFQNL_MSG_PACKET message as the kernel sends it.
func packetMessage(id uint32, physIn, physOut uint32, mac []byte, payload []byte) []byte {
	var attrs []byte
	hdr := make([]byte, 7)
	binary.BigEndian.PutUint32(hdr[0:4], id)
	binary.BigEndian.PutUint16(hdr[4:6], 0x0800)
	hdr[6] = 2 // NF_INET_FORWARD
	attrs = appendAttr(attrs, nfqaPacketHdr, hdr)
	be := func(v uint32) []byte { b := make([]byte, 4); binary.BigEndian.PutUint32(b, v); return b }
	attrs = appendAttr(attrs, nfqaIfIn, be(3))
	attrs = appendAttr(attrs, nfqaIfOut, be(3))
	attrs = appendAttr(attrs, nfqaIfPhysIn, be(physIn))
	attrs = appendAttr(attrs, nfqaIfPhysOut, be(physOut))
	attrs = appendAttr(attrs, nfqaMark, be(0xcd010a00))
	hw := make([]byte, 12)
	binary.BigEndian.PutUint16(hw[0:2], uint16(len(mac)))
	copy(hw[4:], mac)
	attrs = appendAttr(attrs, nfqaHwAddr, hw)
	attrs = appendAttr(attrs, nfqaPayload, payload)
	msg := make([]byte, nlmsgHdrLen+nfgenHdrLen, nlmsgHdrLen+nfgenHdrLen+len(attrs))
	msg = append(msg, attrs...)
	binary.NativeEndian.PutUint32(msg[0:4], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:6], nfnlSubsysQ<<8|nfqMsgPacket)
	binary.BigEndian.PutUint16(msg[18:20], 7)
	return msg
}

func TestParsePacketReadsEveryAttribute(t *testing.T) {
	payload := []byte{0x45, 0, 0, 20, 1, 2, 3} // odd length: padding follows
	mac := []byte{2, 0, 0, 0, 0, 1}
	msg := packetMessage(0x01020304, 11, 12, mac, payload)
	var qp queuedPacket
	if err := parsePacket(msg, &qp); err != nil {
		t.Fatal(err)
	}
	want := queuedPacket{ID: 0x01020304, InDev: 3, OutDev: 3, PhysIn: 11, PhysOut: 12, HwAddr: mac, Payload: payload, Mark: 0xcd010a00}
	if diff := cmp.Diff(want, qp); diff != "" {
		t.Fatalf("parsed packet (-want +got):\n%s", diff)
	}
}

func TestParsePacketRejectsBrokenMessages(t *testing.T) {
	good := packetMessage(1, 1, 2, []byte{1, 2, 3, 4, 5, 6}, []byte{0x45})
	noHdr := append([]byte(nil), good[:nlmsgHdrLen+nfgenHdrLen]...)
	binary.NativeEndian.PutUint32(noHdr[0:4], uint32(len(noHdr)))
	badAttr := append([]byte(nil), good...)
	binary.NativeEndian.PutUint16(badAttr[nlmsgHdrLen+nfgenHdrLen:], 2000) // attribute longer than message
	wrongType := append([]byte(nil), good...)
	binary.NativeEndian.PutUint16(wrongType[4:6], nfnlSubsysQ<<8|nfqMsgConfig)
	tooLong := append([]byte(nil), good...)
	binary.NativeEndian.PutUint32(tooLong[0:4], uint32(len(good)+4))
	for name, tc := range map[string]struct {
		msg  []byte
		want error
	}{
		"short":           {good[:10], errShortMsg},
		"length too long": {tooLong, errShortMsg},
		"no packet id":    {noHdr, errNoPacketID},
		"bad attribute":   {badAttr, errShortMsg},
		"config message":  {wrongType, errNotPacket},
	} {
		t.Run(name, func(t *testing.T) {
			var qp queuedPacket
			if err := parsePacket(tc.msg, &qp); err != tc.want {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestAppendVerdictLayout(t *testing.T) {
	payload := []byte{1, 2, 3, 4, 5}
	buf := appendVerdict(nil, 7, 99, 1, nil)
	buf = appendVerdict(buf, 7, 100, 0, payload)
	// First message: header, nfgenmsg, verdict attribute.
	if l := binary.NativeEndian.Uint32(buf[0:4]); l != 32 {
		t.Fatalf("first message length %d, want 32", l)
	}
	if typ := binary.NativeEndian.Uint16(buf[4:6]); typ != nfnlSubsysQ<<8|nfqMsgVerdict {
		t.Fatalf("type %#x", typ)
	}
	if q := binary.BigEndian.Uint16(buf[18:20]); q != 7 {
		t.Fatalf("res_id %d, want queue 7", q)
	}
	if v, id := binary.BigEndian.Uint32(buf[24:28]), binary.BigEndian.Uint32(buf[28:32]); v != 1 || id != 99 {
		t.Fatalf("verdict %d id %d, want 1 and 99", v, id)
	}
	second := buf[32:]
	if l := binary.NativeEndian.Uint32(second[0:4]); int(l) != 32+4+8 || len(second) != 44 {
		t.Fatalf("second message length %d (buffer %d), want 44 with the padded payload", l, len(second))
	}
	if a := binary.NativeEndian.Uint16(second[34:36]); a != nfqaPayload {
		t.Fatalf("attribute type %d, want payload", a)
	}
	if diff := cmp.Diff(payload, second[36:41]); diff != "" {
		t.Fatalf("payload (-want +got):\n%s", diff)
	}
}
