package rules

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/closeduel/closeduel/nfq"
	"github.com/closeduel/closeduel/segment"
)

// packetPathFiles are the rule files FuzzPacketPath runs packets through:
// rewrites of every field, with and without repair-checksum, by chance
// and always.
var packetPathFiles = []string{
	`experiment: fz-chance
about: Rewrites by chance.
seed: 3
rules:
  - { name: syn, when: { has: [SYN], probability: 50% }, do: { rewrite: { flags: RST+ACK, seq: +1000 } } }
  - { name: ack, when: { has: [ACK], probability: 50% }, do: { rewrite: { ack: -1, window: 0, strip-options: true } } }
  - { name: any, when: { probability: 50% }, do: { rewrite: { set: [FIN], clear: [PSH], repair-checksum: true } } }
`,
	`experiment: fz-always
about: Rewrites every field of every segment.
rules:
  - { name: all, do: { rewrite: { set: [URG, ECE], clear: [SYN], seq: 4294967295, ack: +2147483647, window: 65535, strip-options: true } } }
`,
	`experiment: fz-repair
about: Repairs every checksum.
rules:
  - { name: fix, do: { rewrite: { repair-checksum: true } } }
`,
}

// FuzzPacketPath runs arbitrary raw IP packets through the packet path
// the engine takes: decode, match (a Decider of one of packetPathFiles),
// rewrite in place, and what the engine then does to the bytes (the
// checksums recomputed only when the rule asks). Properties: a rewritten
// packet keeps its length and its IP length field, decodes back to the
// Segment the Decider left, and its TCP checksum is exactly as valid as it
// was (valid stays valid, corrupt stays corrupt) unless repair was asked,
// and then it is valid; a packet that cannot be rewritten (tunnelled,
// fragment, zero IP length) is left byte for byte. The committed corpus,
// in testdata/fuzz/FuzzPacketPath, holds IPv4 and IPv6 segments with and
// without options, IPv6 extension headers (hop-by-hop, destination
// options, routing, fragment), GSO super-packets (64 kB, and with a zero
// IP length as BIG TCP sends them), corrupt checksums, and IP in IP.
func FuzzPacketPath(f *testing.F) {
	deciders := make([]*Decider, len(packetPathFiles))
	for i, src := range packetPathFiles {
		file, err := Parse(fmt.Sprintf("fz%d.yaml", i), []byte(src))
		if err != nil {
			f.Fatal(err)
		}
		deciders[i] = NewDecider(file, Options{MaxConns: 16})
	}
	dec, err := segment.NewDecoder(layers.LinkTypeRaw)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1e9, 0)
	f.Fuzz(func(t *testing.T, pick byte, data []byte) {
		var seg segment.Segment
		if dec.Decode(data, &seg) != nil {
			return
		}
		d := deciders[int(pick)%len(deciders)]
		p := &nfq.Packet{Time: now, Data: bytes.Clone(data), Seg: seg, TCP: true}
		now = now.Add(time.Millisecond)
		validBefore := segment.ChecksumsValid(data, &seg)
		var dc nfq.Decision
		d.Decide(p, &dc)
		checkDecision(t, p, &dc)
		if !dc.Modified {
			if !bytes.Equal(p.Data, data) {
				t.Fatalf("bytes changed without Modified (rule %q, action %q)", dc.Rule, dc.Action)
			}
			return
		}
		if len(p.Data) != len(data) {
			t.Fatalf("length %d after the rewrite, %d before", len(p.Data), len(data))
		}
		if ipLen(p.Data) != ipLen(data) {
			t.Fatalf("IP length %d after the rewrite, %d before", ipLen(p.Data), ipLen(data))
		}
		var again segment.Segment
		if err := dec.Decode(p.Data, &again); err != nil || again != p.Seg {
			t.Fatalf("rewritten packet decodes as %+v (%v), the Decider left %+v", again, err, p.Seg)
		}
		if got := segment.ChecksumsValid(p.Data, &p.Seg); got != validBefore {
			t.Fatalf("checksum valid %v after the rewrite, %v before (repair %v)", got, validBefore, dc.RepairChecksums)
		}
		if dc.RepairChecksums { // what the engine does then
			if err := segment.FixChecksums(p.Data, &p.Seg); err != nil {
				t.Fatalf("repair: %v", err)
			}
			if !segment.ChecksumsValid(p.Data, &p.Seg) {
				t.Fatal("checksum invalid after the repair")
			}
		}
	})
}

// ipLen is the length field of an IP packet (IPv6: payload + 40).
func ipLen(b []byte) int {
	if len(b) > 0 && b[0]>>4 == 6 && len(b) >= 40 {
		return 40 + int(binary.BigEndian.Uint16(b[4:6]))
	}
	if len(b) >= 4 {
		return int(binary.BigEndian.Uint16(b[2:4]))
	}
	return -1
}

// packetPathSeeds returns the seed corpus of FuzzPacketPath.
func packetPathSeeds(tb testing.TB) map[string][]byte {
	v4 := func(opts ...gopacket.SerializableLayer) []byte { return serialize(tb, opts...) }
	src4, dst4 := net.IP{192, 168, 100, 1}, net.IP{192, 168, 100, 99}
	src6, dst6 := net.ParseIP("fd00:7::1"), net.ParseIP("fd00:7::99")
	ip4 := func() *layers.IPv4 {
		return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src4, DstIP: dst4}
	}
	ip6 := func(next layers.IPProtocol) *layers.IPv6 {
		return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: next, SrcIP: src6, DstIP: dst6}
	}
	tcp := func(ip gopacket.NetworkLayer, syn bool, opts bool) *layers.TCP {
		t := &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: 1000, Ack: 2000, ACK: !syn, SYN: syn, PSH: !syn, Window: 502}
		if opts {
			t.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{5, 0xb4}},
				{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}}}
		}
		t.SetNetworkLayerForChecksum(ip)
		return t
	}
	payload := func(n int) gopacket.Payload { return bytes.Repeat([]byte("closeduel"), n/9+1)[:n] }
	seeds := map[string][]byte{}
	{
		ip := ip4()
		seeds["v4-syn-options"] = v4(ip, tcp(ip, true, true))
		ip = ip4()
		seeds["v4-data"] = v4(ip, tcp(ip, false, false), payload(100))
		ip = ip4()
		seeds["v4-gso-64k"] = v4(ip, tcp(ip, false, false), payload(65535-40))
		ip = ip4()
		big := v4(ip, tcp(ip, false, false), payload(3000))
		binary.BigEndian.PutUint16(big[2:4], 0) // BIG TCP: zero IP length
		seeds["v4-big-tcp-zero-length"] = big
		bad := bytes.Clone(seeds["v4-data"])
		bad[20+16] ^= 0x5a
		seeds["v4-bad-checksum"] = bad
		inner := seeds["v4-data"]
		outer := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolIPv4, SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 0, 0, 2}}
		seeds["v4-in-v4"] = v4(outer, gopacket.Payload(inner))
	}
	{
		ip := ip6(layers.IPProtocolTCP)
		seeds["v6-syn-options"] = v4(ip, tcp(ip, true, true))
		ip = ip6(layers.IPProtocolTCP)
		seeds["v6-gso-64k"] = v4(ip, tcp(ip, false, false), payload(65535-20))
		ip = ip6(layers.IPProtocolTCP)
		bad := v4(ip, tcp(ip, false, false), payload(10))
		bad[40+16] ^= 0xa5
		seeds["v6-bad-checksum"] = bad
		// Extension headers, built by hand: next header, length, data.
		ext := func(kind layers.IPProtocol, hdr []byte) []byte {
			ip := ip6(kind)
			t := tcp(ip, false, false)
			body := v4(t, payload(20))
			b := v4(ip, gopacket.Payload(append(bytes.Clone(hdr), body...)))
			// The checksum gopacket computed is over the pseudo-header
			// with the final destination: fix it with the package.
			var s segment.Segment
			d, _ := segment.NewDecoder(layers.LinkTypeRaw)
			if d.Decode(b, &s) == nil {
				segment.FixChecksums(b, &s)
			}
			return b
		}
		hbh := []byte{byte(layers.IPProtocolTCP), 0, 1, 4, 0, 0, 0, 0}        // Pad1... PadN
		dst := []byte{byte(layers.IPProtocolTCP), 0, 1, 4, 0, 0, 0, 0}        // destination options
		frag := []byte{byte(layers.IPProtocolTCP), 0, 0, 0, 0, 0, 0x12, 0x34} // an atomic fragment
		rt := []byte{byte(layers.IPProtocolTCP), 0, 4, 0, 0, 0, 0, 0}         // routing type 4, no segments left
		hbhDst := append([]byte{byte(layers.IPProtocolIPv6Destination), 0, 1, 4, 0, 0, 0, 0}, dst...)
		seeds["v6-hop-by-hop"] = ext(layers.IPProtocolIPv6HopByHop, hbh)
		seeds["v6-destination-options"] = ext(layers.IPProtocolIPv6Destination, dst)
		seeds["v6-fragment-atomic"] = ext(layers.IPProtocolIPv6Fragment, frag)
		seeds["v6-routing"] = ext(layers.IPProtocolIPv6Routing, rt)
		seeds["v6-hop-by-hop-then-destination"] = ext(layers.IPProtocolIPv6HopByHop, hbhDst)
	}
	return seeds
}

func serialize(tb testing.TB, ls ...gopacket.SerializableLayer) []byte {
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		tb.Fatal(err)
	}
	return bytes.Clone(buf.Bytes())
}

// TestPacketPathSeedCorpus writes FuzzPacketPath's committed seed corpus
// (with -update) and checks it is there and decodes.
func TestPacketPathSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzPacketPath")
	seeds := packetPathSeeds(t)
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		i := 0
		for name, data := range seeds {
			for pick := range len(packetPathFiles) {
				body := fmt.Sprintf("go test fuzz v1\nbyte(%q)\n[]byte(%q)\n", byte(pick+i), data)
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d", name, pick)), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			i += len(packetPathFiles)
		}
	}
	dec, _ := segment.NewDecoder(layers.LinkTypeRaw)
	for name, data := range seeds {
		if _, err := os.Stat(filepath.Join(dir, name+"-0")); err != nil {
			t.Errorf("seed %s missing from %s (run go test -run TestPacketPathSeedCorpus -update)", name, dir)
		}
		var s segment.Segment
		if err := dec.Decode(data, &s); err != nil && name != "v4-in-v4" {
			t.Errorf("seed %s does not decode: %v", name, err)
		}
	}
}
