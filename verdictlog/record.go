package verdictlog

import (
	"net/netip"
	"time"

	"github.com/closeduel/closeduel/nfq"
	"github.com/closeduel/closeduel/segment"
	"github.com/closeduel/closeduel/vlanmark"
)

// record is one event as a slot keeps it: everything the writer needs,
// copied out of the nfq.Event. Strings are kept by reference: Go strings
// are immutable, so holding one copies nothing and stays valid.
type record struct {
	kind    nfq.EventKind
	verdict nfq.Verdict
	tcp     bool
	id      uint32
	arrived int64 // ns since the Unix epoch
	left    int64 // ns since the Unix epoch
	// lostBefore is the writer's Lost count when the record was queued,
	// so the writer can mark a gap exactly where records went missing.
	lostBefore uint64

	seg      segment.Segment // when tcp
	vlan     vlanmark.Tag    // the zero Tag when untagged
	src, dst netip.Addr      // when !tcp, from the IP header if it parsed
	// a tagged frame's Ethernet addresses (zero: unknown)
	dstMAC, srcMAC [6]byte

	conn                       uint64
	rule, action, dir, rewrote string

	origLen int    // full length of the packet
	data    []byte // the first SnapLen bytes; its capacity is the slot's buffer
}

// fill copies ev into r, the packet bytes into the slot's buffer r.data
// (which has no capacity when no pcapng is written). It allocates nothing.
func (r *record) fill(ev *nfq.Event) {
	r.kind = ev.Kind
	r.verdict = ev.Verdict
	r.tcp = ev.TCP
	r.id = ev.PacketID
	r.vlan = ev.VLAN
	r.dstMAC, r.srcMAC = ev.DstMAC, ev.SrcMAC
	r.arrived = ev.Arrived.UnixNano()
	r.left = ev.Left.UnixNano()
	if ev.TCP {
		r.seg = ev.Seg
		r.src, r.dst = netip.Addr{}, netip.Addr{}
	} else {
		r.seg = segment.Segment{}
		r.src, r.dst = ipAddrs(ev.Data)
	}
	if d := ev.Decision; d != nil {
		r.conn, r.rule, r.action, r.dir, r.rewrote = d.Conn, d.Rule, d.Action, d.Dir, d.Rewrote
	} else {
		r.conn, r.rule, r.action, r.dir, r.rewrote = 0, "", "", "", ""
	}
	r.origLen = max(ev.OrigLen, len(ev.Data))
	r.data = r.data[:copy(r.data[:cap(r.data)], ev.Data)]
}

// held returns how long the packet was held before its verdict.
func (r *record) held() time.Duration { return time.Duration(r.left - r.arrived) }

// ipAddrs reads the source and destination addresses of an IPv4 or IPv6
// header; zero Addrs when b holds neither.
func ipAddrs(b []byte) (src, dst netip.Addr) {
	if len(b) == 0 {
		return
	}
	switch b[0] >> 4 {
	case 4:
		if len(b) >= 20 {
			return netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20]))
		}
	case 6:
		if len(b) >= 40 {
			return netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40]))
		}
	}
	return
}
