package verdictlog

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/closeduel/closeduel/nfq"
	"github.com/closeduel/closeduel/segment"
)

// t0 is the arrival time of the first fixture packet.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)

// fixture is one event with what the log must say about it.
type fixture struct {
	name    string
	ev      nfq.Event
	json    map[string]any // the record as encoding/json decodes it, numbers as int
	comment string         // the pcapng frame comment
	capLen  int            // bytes the pcapng keeps with fixtureSnapLen
}

// fixtureSnapLen is the SnapLen the fixtures are written with.
const fixtureSnapLen = 200

var (
	client  = netip.MustParseAddrPort("10.0.0.2:40000")
	device  = netip.MustParseAddrPort("10.0.0.3:80")
	client6 = netip.MustParseAddrPort("[fd00::2]:40001")
	device6 = netip.MustParseAddrPort("[fd00::3]:80")
)

// tcpPacket builds a raw IP packet carrying a TCP segment with payload
// bytes of payload, valid checksums included, and decodes it.
func tcpPacket(t testing.TB, from, to netip.AddrPort, flags segment.Flags, seq, ack uint32, win uint16, payload int) ([]byte, segment.Segment) {
	t.Helper()
	frame, err := segment.Build(nil, net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}, &segment.Template{
		Tuple: segment.Tuple{Src: from, Dst: to}, Flags: flags, Seq: segment.Seq(seq), Ack: segment.Seq(ack), Window: win,
	})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	pkt := append([]byte(nil), frame[segment.EthernetHeaderLen:]...)
	for i := range payload {
		pkt = append(pkt, byte('a'+i%26))
	}
	if from.Addr().Is4() {
		binary.BigEndian.PutUint16(pkt[2:4], uint16(len(pkt)))
	} else {
		binary.BigEndian.PutUint16(pkt[4:6], uint16(len(pkt)-40))
	}
	dec, err := segment.NewDecoder(layers.LinkTypeRaw)
	if err != nil {
		t.Fatal(err)
	}
	var seg segment.Segment
	if err := dec.Decode(pkt, &seg); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if err := segment.FixChecksums(pkt, &seg); err != nil {
		t.Fatalf("checksums: %v", err)
	}
	if err := dec.Decode(pkt, &seg); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return pkt, seg
}

// udpPacket is an IPv4 UDP datagram from 10.0.0.2:5353 to 10.0.0.255:5353.
func udpPacket() []byte {
	p := make([]byte, 28)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:4], 28)
	p[8], p[9] = 64, 17
	copy(p[12:16], []byte{10, 0, 0, 2})
	copy(p[16:20], []byte{10, 0, 0, 255})
	binary.BigEndian.PutUint16(p[20:22], 5353)
	binary.BigEndian.PutUint16(p[22:24], 5353)
	binary.BigEndian.PutUint16(p[24:26], 8)
	return p
}

// fixtures returns events covering every kind, both IP versions, non-TCP
// packets, cut packets, rewrites, names that need escaping, and a nil
// Decision, with the records they must produce.
func fixtures(t testing.TB) []fixture {
	t.Helper()
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	ns := func(d time.Duration) int { return int(t0.Add(d).UnixNano()) }
	var fs []fixture

	syn, synSeg := tcpPacket(t, client, device, segment.SYN, 1000, 0, 64240, 0)
	fs = append(fs, fixture{
		name: "syn accepted at once",
		ev: nfq.Event{Kind: nfq.EventVerdict, Arrived: at(0), Left: at(0), PacketID: 1, Verdict: nfq.Accept,
			Decision: &nfq.Decision{Conn: 1, Dir: "client>device"}, Data: syn, Seg: synSeg, TCP: true},
		json: map[string]any{"v": 1, "kind": "verdict", "t": ns(0), "left": ns(0), "id": 1, "dir": "client>device",
			"src": "10.0.0.2", "dst": "10.0.0.3", "sport": 40000, "dport": 80, "flags": "SYN", "seq": 1000, "ack": 0,
			"win": 64240, "len": 0, "conn": 1, "action": "pass", "verdict": "accept", "delay": 0},
		comment: "closeduel verdict=accept action=pass rule=- conn=1 dir=client>device held=0s",
		capLen:  len(syn),
	})

	rst, rstSeg := tcpPacket(t, device, client, segment.RST|segment.ACK, 4294967000, 1001, 0, 0)
	fs = append(fs, fixture{
		name: "rst dropped by a rule with an awkward name",
		ev: nfq.Event{Kind: nfq.EventVerdict, Arrived: at(time.Millisecond), Left: at(2500 * time.Microsecond), PacketID: 2,
			Verdict: nfq.Drop, Decision: &nfq.Decision{Verdict: nfq.Drop, Rule: "odd \"name\"\tü\xff", Action: "drop", Conn: 2, Dir: "device>client"},
			Data: rst, Seg: rstSeg, TCP: true},
		json: map[string]any{"v": 1, "kind": "verdict", "t": ns(time.Millisecond), "left": ns(2500 * time.Microsecond), "id": 2,
			"dir": "device>client", "src": "10.0.0.3", "dst": "10.0.0.2", "sport": 80, "dport": 40000, "flags": "RST+ACK",
			"seq": 4294967000, "ack": 1001, "win": 0, "len": 0, "conn": 2, "rule": "odd \"name\"\tü\uFFFD", "action": "drop",
			"verdict": "drop", "delay": 1500000},
		comment: "closeduel verdict=drop action=drop rule=odd_\"name\"_ü\uFFFD conn=2 dir=device>client held=1.5ms",
		capLen:  len(rst),
	})

	head, headSeg := tcpPacket(t, client, device, segment.PSH|segment.ACK, 1001, 7001, 502, 19)
	fs = append(fs, fixture{
		name: "request delayed and rewritten",
		ev: nfq.Event{Kind: nfq.EventVerdict, Arrived: at(3 * time.Millisecond), Left: at(5*time.Millisecond + 400*time.Nanosecond),
			PacketID: 3, Verdict: nfq.Accept, Decision: &nfq.Decision{Rule: "slow-window", Action: "rewrite", Conn: 1,
				Dir: "client>device", Modified: true, Rewrote: "window 1024 -> 502"},
			Data: head, Seg: headSeg, TCP: true},
		json: map[string]any{"v": 1, "kind": "verdict", "t": ns(3 * time.Millisecond), "left": ns(5*time.Millisecond + 400),
			"id": 3, "dir": "client>device", "src": "10.0.0.2", "dst": "10.0.0.3", "sport": 40000, "dport": 80,
			"flags": "PSH+ACK", "seq": 1001, "ack": 7001, "win": 502, "len": 19, "conn": 1, "rule": "slow-window",
			"action": "rewrite", "verdict": "accept", "delay": 2000400, "rewrote": "window 1024 -> 502"},
		comment: "closeduel verdict=accept action=rewrite rule=slow-window conn=1 dir=client>device held=2ms rewrote=window_1024_->_502",
		capLen:  len(head),
	})

	fin, finSeg := tcpPacket(t, device, client, segment.FIN|segment.ACK, 7001, 1020, 5840, 0)
	fs = append(fs, fixture{
		name: "duplicate of a fin",
		ev: nfq.Event{Kind: nfq.EventDuplicate, Arrived: at(6 * time.Millisecond), Left: at(16 * time.Millisecond), PacketID: 4,
			Decision: &nfq.Decision{Rule: "dup-fin", Action: "duplicate", Conn: 1, Dir: "device>client", Duplicates: 1, DupGap: 10 * time.Millisecond},
			Data:     fin, Seg: finSeg, TCP: true},
		json: map[string]any{"v": 1, "kind": "duplicate", "t": ns(6 * time.Millisecond), "left": ns(16 * time.Millisecond),
			"id": 4, "dir": "device>client", "src": "10.0.0.3", "dst": "10.0.0.2", "sport": 80, "dport": 40000,
			"flags": "FIN+ACK", "seq": 7001, "ack": 1020, "win": 5840, "len": 0, "conn": 1, "rule": "dup-fin", "action": "duplicate"},
		comment: "closeduel duplicate action=duplicate rule=dup-fin conn=1 dir=device>client",
		capLen:  len(fin),
	})

	inj, injSeg := tcpPacket(t, client, device, segment.RST, 1020, 0, 0, 0)
	fs = append(fs, fixture{
		name: "injected rst",
		ev: nfq.Event{Kind: nfq.EventInjected, Arrived: at(6 * time.Millisecond), Left: at(6*time.Millisecond + 30*time.Microsecond),
			PacketID: 4, Decision: &nfq.Decision{Rule: "kill-stale", Action: "inject", Conn: 1, Dir: "device>client"},
			Data: inj, Seg: injSeg, TCP: true},
		json: map[string]any{"v": 1, "kind": "injected", "t": ns(6 * time.Millisecond), "left": ns(6*time.Millisecond + 30*time.Microsecond),
			"id": 4, "dir": "device>client", "src": "10.0.0.2", "dst": "10.0.0.3", "sport": 40000, "dport": 80,
			"flags": "RST", "seq": 1020, "ack": 0, "win": 0, "len": 0, "conn": 1, "rule": "kill-stale", "action": "inject"},
		comment: "closeduel injected action=inject rule=kill-stale conn=1 dir=device>client",
		capLen:  len(inj),
	})

	udp := udpPacket()
	fs = append(fs, fixture{
		name: "udp is not tcp",
		ev: nfq.Event{Kind: nfq.EventVerdict, Arrived: at(7 * time.Millisecond), Left: at(7*time.Millisecond + 333),
			PacketID: 5, Verdict: nfq.Accept, Decision: &nfq.Decision{}, Data: udp},
		json: map[string]any{"v": 1, "kind": "verdict", "t": ns(7 * time.Millisecond), "left": ns(7*time.Millisecond + 333),
			"id": 5, "src": "10.0.0.2", "dst": "10.0.0.255", "tcp": false, "action": "pass", "verdict": "accept", "delay": 333},
		comment: "closeduel verdict=accept action=pass rule=- conn=0 dir=- held=0s",
		capLen:  len(udp),
	})

	synack6, synack6Seg := tcpPacket(t, device6, client6, segment.SYN|segment.ACK, 99, 5001, 65535, 0)
	fs = append(fs, fixture{
		name: "ipv6 syn-ack held long",
		ev: nfq.Event{Kind: nfq.EventVerdict, Arrived: at(8 * time.Millisecond), Left: at(8*time.Millisecond + 1234567800),
			PacketID: 6, Verdict: nfq.Accept, Decision: &nfq.Decision{Rule: "hold", Action: "delay", Conn: 3, Dir: "device>client"},
			Data: synack6, Seg: synack6Seg, TCP: true},
		json: map[string]any{"v": 1, "kind": "verdict", "t": ns(8 * time.Millisecond), "left": ns(8*time.Millisecond + 1234567800),
			"id": 6, "dir": "device>client", "src": "fd00::3", "dst": "fd00::2", "sport": 80, "dport": 40001,
			"flags": "SYN+ACK", "seq": 99, "ack": 5001, "win": 65535, "len": 0, "conn": 3, "rule": "hold",
			"action": "delay", "verdict": "accept", "delay": 1234567800},
		comment: "closeduel verdict=accept action=delay rule=hold conn=3 dir=device>client held=1.234568s",
		capLen:  len(synack6),
	})

	big, bigSeg := tcpPacket(t, device, client, segment.ACK, 7002, 1020, 5840, 1400)
	fs = append(fs, fixture{
		name: "long packet cut to snaplen",
		ev: nfq.Event{Kind: nfq.EventVerdict, Arrived: at(2 * time.Second), Left: at(2 * time.Second), PacketID: 7,
			Verdict: nfq.Accept, Decision: &nfq.Decision{Conn: 1, Dir: "device>client"}, Data: big, Seg: bigSeg, TCP: true},
		json: map[string]any{"v": 1, "kind": "verdict", "t": ns(2 * time.Second), "left": ns(2 * time.Second), "id": 7,
			"dir": "device>client", "src": "10.0.0.3", "dst": "10.0.0.2", "sport": 80, "dport": 40000, "flags": "ACK",
			"seq": 7002, "ack": 1020, "win": 5840, "len": 1400, "conn": 1, "action": "pass", "verdict": "accept", "delay": 0},
		comment: "closeduel verdict=accept action=pass rule=- conn=1 dir=device>client held=0s",
		capLen:  fixtureSnapLen,
	})

	fs = append(fs, fixture{
		name: "packet the engine already cut",
		ev: nfq.Event{Kind: nfq.EventVerdict, Arrived: at(3 * time.Second), Left: at(3 * time.Second), PacketID: 8,
			Verdict: nfq.Drop, Decision: &nfq.Decision{Rule: "drop-data", Action: "drop", Conn: 1, Dir: "device>client"},
			Data: big[:120], OrigLen: len(big), Seg: bigSeg, TCP: true},
		json: map[string]any{"v": 1, "kind": "verdict", "t": ns(3 * time.Second), "left": ns(3 * time.Second), "id": 8,
			"dir": "device>client", "src": "10.0.0.3", "dst": "10.0.0.2", "sport": 80, "dport": 40000, "flags": "ACK",
			"seq": 7002, "ack": 1020, "win": 5840, "len": 1400, "conn": 1, "rule": "drop-data", "action": "drop",
			"verdict": "drop", "delay": 0},
		comment: "closeduel verdict=drop action=drop rule=drop-data conn=1 dir=device>client held=0s",
		capLen:  120,
	})

	fs = append(fs, fixture{
		name: "garbage without a decision",
		ev: nfq.Event{Kind: nfq.EventVerdict, Arrived: at(4 * time.Second), Left: at(4*time.Second + time.Microsecond),
			PacketID: 9, Verdict: nfq.Accept, Data: []byte{0x00, 0x01, 0x02}},
		json: map[string]any{"v": 1, "kind": "verdict", "t": ns(4 * time.Second), "left": ns(4*time.Second + time.Microsecond),
			"id": 9, "tcp": false, "action": "pass", "verdict": "accept", "delay": 1000},
		comment: "closeduel verdict=accept action=pass rule=- conn=0 dir=- held=1µs",
		capLen:  3,
	})
	return fs
}
