package analysis

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/closeduel/closeduel/segment"
	"github.com/google/go-cmp/cmp"
)

// pcapRecord is one record of a hand-written pcap file.
type pcapRecord struct {
	data    []byte
	capLen  uint32 // written as the record's captured length; len(data) when 0
	origLen uint32 // written as its original length; len(data) when 0
}

// rawPcap writes a little-endian microsecond pcap by hand, so that tests
// can give records lengths no writer library would.
func rawPcap(t testing.TB, link uint32, snaplen uint32, recs []pcapRecord) string {
	t.Helper()
	var b bytes.Buffer
	le := binary.LittleEndian
	h := make([]byte, 24)
	le.PutUint32(h[0:], 0xa1b2c3d4)
	le.PutUint16(h[4:], 2)
	le.PutUint16(h[6:], 4)
	le.PutUint32(h[16:], snaplen)
	le.PutUint32(h[20:], link)
	b.Write(h)
	for i, r := range recs {
		rh := make([]byte, 16)
		le.PutUint32(rh[0:], 1700000000+uint32(i))
		capLen, origLen := r.capLen, r.origLen
		if capLen == 0 {
			capLen = uint32(len(r.data))
		}
		if origLen == 0 {
			origLen = uint32(len(r.data))
		}
		le.PutUint32(rh[8:], capLen)
		le.PutUint32(rh[12:], origLen)
		b.Write(rh)
		b.Write(r.data)
	}
	p := tempPath(t, "in.pcap")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// synthFrames returns scenario 1's packets as Ethernet frames.
func synthFrames(t testing.TB) [][]byte {
	s := newSynth()
	scenarios[1].build(s)
	var out [][]byte
	for i := range s.pkts {
		out = append(out, frame(t, &s.pkts[i].seg))
	}
	return out
}

// analyzeOne analyses one file and returns the report and its input.
func analyzeOne(t *testing.T, path string) (*Report, InputInfo) {
	t.Helper()
	r, err := Analyze(context.Background(), Config{}, []string{path})
	if err != nil {
		t.Fatalf("Analyze: %v", err)
	}
	return r, r.Inputs[0]
}

// TestCaptureLinkTypes: captures of the link types that carry TCP the
// readers used to refuse (BSD loopback, NFLOG, Cisco HDLC) and of framings
// they used to skip (VLAN tags, tunnels) give the same connections as
// plain Ethernet, and count their segments by what they came through.
func TestCaptureLinkTypes(t *testing.T) {
	frames := synthFrames(t)
	ipOf := func(f []byte) []byte { return f[segment.EthernetHeaderLen:] }
	nflog := func(ip []byte) []byte {
		b := []byte{2, 0, 0, 0}
		l := 4 + len(ip)
		b = append(b, byte(l), byte(l>>8), 9, 0)
		return append(b, ip...)
	}
	vlan := func(f []byte, outer, inner uint16) []byte {
		out := append([]byte(nil), f[:12]...)
		out = append(out, 0x88, 0xa8, byte(outer>>8), byte(outer), 0x81, 0x00, byte(inner>>8), byte(inner))
		return append(out, f[12:]...)
	}
	vxlan := func(f []byte) []byte { // IPv4/UDP 4789/VXLAN around the frame, raw IP
		udpLen := 8 + 8 + len(f)
		ip := []byte{0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 9, 9, 1, 10, 9, 9, 2}
		binary.BigEndian.PutUint16(ip[2:], uint16(20+udpLen))
		udp := []byte{0xc3, 0x50, 0x12, 0xb5, byte(udpLen >> 8), byte(udpLen), 0, 0}
		return append(append(append(ip, udp...), 8, 0, 0, 0, 0, 0, 7, 0), f...)
	}
	want, _ := func() (*Report, InputInfo) {
		var recs []pcapRecord
		for _, f := range frames {
			recs = append(recs, pcapRecord{data: f})
		}
		return analyzeOne(t, rawPcap(t, 1, 65535, recs))
	}()
	for _, c := range []struct {
		name string
		link uint32
		wrap func([]byte) []byte
		via  map[string]int
	}{
		{"BSD loopback (Null)", 0, func(f []byte) []byte { return append([]byte{2, 0, 0, 0}, ipOf(f)...) }, nil},
		{"OpenBSD loopback", 108, func(f []byte) []byte { return append([]byte{0, 0, 0, 2}, ipOf(f)...) }, nil},
		{"NFLOG", 239, func(f []byte) []byte { return nflog(ipOf(f)) }, nil},
		{"Cisco HDLC", 104, func(f []byte) []byte { return append([]byte{0x0f, 0, 0x08, 0}, ipOf(f)...) }, nil},
		{"QinQ", 1, func(f []byte) []byte { return vlan(f, 100, 7) }, map[string]int{"vlan": len(frames), "qinq": len(frames)}},
		{"VXLAN", 101, vxlan, map[string]int{"vxlan": len(frames)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var recs []pcapRecord
			for _, f := range frames {
				recs = append(recs, pcapRecord{data: c.wrap(f)})
			}
			r, in := analyzeOne(t, rawPcap(t, c.link, 65535, recs))
			if in.Segments != len(frames) || in.Skipped != 0 {
				t.Fatalf("%d segments, %d skipped (%v); want %d, 0", in.Segments, in.Skipped, in.SkippedBy, len(frames))
			}
			if diff := cmp.Diff(c.via, in.Via); diff != "" {
				t.Errorf("via (-want +got):\n%s", diff)
			}
			if r.Totals.Connections != want.Totals.Connections || r.Totals.CleanCloses != want.Totals.CleanCloses {
				t.Errorf("connections %d (clean %d), Ethernet gives %d (%d)", r.Totals.Connections, r.Totals.CleanCloses, want.Totals.Connections, want.Totals.CleanCloses)
			}
		})
	}
}

// TestCaptureUndecodedLinkType: a capture whose link type holds no TCP the
// decoder reads (netlink, USB, 802.11, a user type) is not an error: every
// record is skipped and the reason said.
func TestCaptureUndecodedLinkType(t *testing.T) {
	for _, link := range []uint32{253, 189, 105, 147} {
		p := rawPcap(t, link, 65535, []pcapRecord{{data: make([]byte, 40)}, {data: make([]byte, 60)}})
		_, in := analyzeOne(t, p)
		if in.Records != 2 || in.Skipped != 2 || in.Segments != 0 {
			t.Fatalf("link %d: %d records, %d skipped, %d segments", link, in.Records, in.Skipped, in.Segments)
		}
		if len(in.SkippedBy) != 1 {
			t.Fatalf("link %d: skipped by %v", link, in.SkippedBy)
		}
		for reason, n := range in.SkippedBy {
			if n != 2 || !strings.Contains(reason, "not decoded") || !strings.Contains(reason, strconv.Itoa(int(link))) {
				t.Errorf("link %d: skipped by %q: %d", link, reason, n)
			}
		}
	}
}

// TestCaptureAbsurdRecordLength: one record whose length is absurd ends
// the input with a warning; the records before it are analysed.
func TestCaptureAbsurdRecordLength(t *testing.T) {
	frames := synthFrames(t)
	var recs []pcapRecord
	for _, f := range frames[:5] {
		recs = append(recs, pcapRecord{data: f})
	}
	recs = append(recs, pcapRecord{data: frames[5], capLen: 0x7ffffff0, origLen: 0x7ffffff0})
	for _, f := range frames[6:] {
		recs = append(recs, pcapRecord{data: f})
	}
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	_, in := analyzeOne(t, rawPcap(t, 1, 0xffffffff, recs))
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if in.Records != 5 || in.Segments != 5 {
		t.Errorf("%d records, %d segments; want the 5 before the bad one", in.Records, in.Segments)
	}
	if len(in.Warnings) != 1 || !strings.Contains(in.Warnings[0], "record 6") || !strings.Contains(in.Warnings[0], "limit") {
		t.Errorf("warnings %q, want one about record 6 and the limit", in.Warnings)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Errorf("reading allocated %d MiB", grew>>20)
	}
}

// TestCaptureSnapLengthHint: a capture with a snap length of 40 skips every
// record and says why, with what to do about it.
func TestCaptureSnapLengthHint(t *testing.T) {
	var recs []pcapRecord
	for _, f := range synthFrames(t) {
		n := min(len(f), 40)
		recs = append(recs, pcapRecord{data: f[:n], origLen: uint32(len(f))})
	}
	_, in := analyzeOne(t, rawPcap(t, 1, 40, recs))
	if in.Segments != 0 || in.Skipped != len(recs) || in.SkippedBy["cut by snap length"] != len(recs) {
		t.Fatalf("%d segments, skipped %d by %v", in.Segments, in.Skipped, in.SkippedBy)
	}
	if len(in.Warnings) != 1 || !strings.Contains(in.Warnings[0], "snap length (40 octets)") || !strings.Contains(in.Warnings[0], "-s 128") {
		t.Errorf("warnings %q, want the snap-length hint", in.Warnings)
	}
}

// TestCaptureCappedPayload: a frame shorter on the wire than its IP length
// says is read with the payload the wire carried: a pure ACK whose IP
// length claims data is no data and no retransmission.
func TestCaptureCappedPayload(t *testing.T) {
	frames := synthFrames(t)
	var recs []pcapRecord
	for _, f := range frames {
		recs = append(recs, pcapRecord{data: f})
	}
	// Replay the third packet (the handshake's ACK) with an IP length
	// claiming 20 octets of payload that the frame does not have.
	bad := append([]byte(nil), frames[2]...)
	ip := bad[segment.EthernetHeaderLen:]
	binary.BigEndian.PutUint16(ip[2:], binary.BigEndian.Uint16(ip[2:])+20)
	want, _ := analyzeOne(t, rawPcap(t, 1, 65535, recs))
	recs = append(recs[:3], append([]pcapRecord{{data: bad}}, recs[3:]...)...)
	r, in := analyzeOne(t, rawPcap(t, 1, 65535, recs))
	if in.Via["capped"] != 1 {
		t.Errorf("via %v, want one capped segment", in.Via)
	}
	if r.Totals.Retransmissions != want.Totals.Retransmissions {
		t.Errorf("%d retransmissions, %d without the duplicate pure ACK", r.Totals.Retransmissions, want.Totals.Retransmissions)
	}
}

// TestPcapngInterfaceLimit: a pcapng file with more interfaces than
// MaxInterfaces is refused with an error that names the limit, without
// taking memory for them.
func TestPcapngInterfaceLimit(t *testing.T) {
	var b bytes.Buffer
	le := binary.LittleEndian
	shb := make([]byte, 28)
	le.PutUint32(shb[0:], 0x0a0d0d0a)
	le.PutUint32(shb[4:], 28)
	le.PutUint32(shb[8:], 0x1a2b3c4d)
	le.PutUint16(shb[12:], 1)
	le.PutUint64(shb[16:], ^uint64(0))
	le.PutUint32(shb[24:], 28)
	b.Write(shb)
	idb := make([]byte, 20)
	le.PutUint32(idb[0:], 1)
	le.PutUint32(idb[4:], 20)
	le.PutUint16(idb[8:], 1)
	le.PutUint32(idb[12:], 65535)
	le.PutUint32(idb[16:], 20)
	for range 200000 {
		b.Write(idb)
	}
	p := tempPath(t, "many.pcapng")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Analyze(context.Background(), Config{}, []string{p})
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "4096 interfaces") {
		t.Fatalf("Analyze = %v, want the interface limit", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 32<<20 {
		t.Errorf("reading allocated %d MiB", grew>>20)
	}
}

// TestJSONLLineLimit: a line longer than MaxLineSize is skipped with a
// warning without being held in memory, and the lines after it are read.
func TestJSONLLineLimit(t *testing.T) {
	s := newSynth()
	scenarios[1].build(s)
	good := tempPath(t, "good.jsonl")
	s.writeLog(t, good)
	lines, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.WriteString(`{"v":1,"kind":"verdict","x":"`)
	b.Write(bytes.Repeat([]byte{'x'}, 24<<20))
	b.WriteString("\"}\n")
	b.Write(lines)
	p := tempPath(t, "long.jsonl")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	_, want := analyzeOne(t, good)
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	_, in := analyzeOne(t, p)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if in.Segments != want.Segments || in.Skipped != want.Skipped+1 {
		t.Errorf("%d segments, %d skipped; want %d, %d", in.Segments, in.Skipped, want.Segments, want.Skipped+1)
	}
	if len(in.Warnings) == 0 || !strings.Contains(in.Warnings[0], "line 1: longer than the 1048576-octet limit") {
		t.Errorf("warnings %q, want line 1 over the limit", in.Warnings)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Errorf("reading a 24 MiB line allocated %d MiB", grew>>20)
	}
}
