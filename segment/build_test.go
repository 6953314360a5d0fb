package segment

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

func buildTemplates() []struct {
	name string
	tpl  Template
} {
	return []struct {
		name string
		tpl  Template
	}{
		{"v4 RST", Template{Tuple: Tuple{Src: cli4, Dst: dev4}, Flags: RST, Seq: 0xfffffffe}},
		{"v4 RST+ACK ttl 1", Template{Tuple: Tuple{Src: dev4, Dst: cli4}, Flags: RST | ACK, Seq: 1, Ack: 0x80000000, TTL: 1}},
		{"v4 ACK window", Template{Tuple: Tuple{Src: cli4, Dst: dev4}, Flags: ACK, Seq: 100, Ack: 6601, Window: 502, TTL: 255}},
		{"v4 SYN", Template{Tuple: Tuple{Src: cli4, Dst: dev4}, Flags: SYN, Seq: 7, Window: 64240}},
		{"v4 FIN+ACK", Template{Tuple: Tuple{Src: dev4, Dst: cli4}, Flags: FIN | ACK, Seq: 9, Ack: 10, Window: 5840}},
		{"v4 all flags", Template{Tuple: Tuple{Src: cli4, Dst: dev4}, Flags: 0xff, Window: 0xffff}},
		{"v6 RST", Template{Tuple: Tuple{Src: cli6, Dst: dev6}, Flags: RST, Seq: 77}},
		{"v6 RST+ACK", Template{Tuple: Tuple{Src: dev6, Dst: cli6}, Flags: RST | ACK, Seq: 1, Ack: 2, TTL: 3}},
		{"v6 SYN+ACK", Template{Tuple: Tuple{Src: dev6, Dst: cli6}, Flags: SYN | ACK, Seq: 5, Ack: 6, Window: 5760}},
		{"v6 v4-mapped", Template{Tuple: Tuple{Src: mapped(cli4), Dst: mapped(dev4)}, Flags: ACK, Seq: 5, Ack: 6}},
	}
}

// TestBuild decodes built frames back with an Ethernet decoder and with
// gopacket, and checks the checksums with gopacket's code.
func TestBuild(t *testing.T) {
	d := newDecoder(t, layers.LinkTypeEthernet)
	for _, c := range buildTemplates() {
		t.Run(c.name, func(t *testing.T) {
			frame, err := Build(nil, cliMAC, devMAC, &c.tpl)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			ttl := c.tpl.TTL
			if ttl == 0 {
				ttl = 64
			}
			ipLen := 20
			if c.tpl.Tuple.Src.Addr().Is6() {
				ipLen = 40
			}
			want := Segment{Src: c.tpl.Tuple.Src, Dst: c.tpl.Tuple.Dst, Flags: c.tpl.Flags, Seq: c.tpl.Seq, Ack: c.tpl.Ack,
				Window: c.tpl.Window, WindowScale: -1, TTL: ttl, IPHeaderLen: ipLen, TCPHeaderLen: 20}
			if len(frame) != EthernetHeaderLen+ipLen+20 {
				t.Errorf("frame is %d bytes, want %d", len(frame), EthernetHeaderLen+ipLen+20)
			}
			var got Segment
			if err := d.Decode(frame, &got); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(want, got, cmpAddr); diff != "" {
				t.Errorf("segment (-template +decoded):\n%s", diff)
			}
			if diff := cmp.Diff(want, reference(t, frame, layers.LayerTypeEthernet), cmpAddr); diff != "" {
				t.Errorf("segment (-template +gopacket):\n%s", diff)
			}
			pk := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
			eth := pk.LinkLayer().(*layers.Ethernet)
			if eth.SrcMAC.String() != cliMAC.String() || eth.DstMAC.String() != devMAC.String() {
				t.Errorf("MACs %v -> %v, want %v -> %v", eth.SrcMAC, eth.DstMAC, cliMAC, devMAC)
			}
			verifyWithGopacket(t, frame[EthernetHeaderLen:])
			if !ChecksumsValid(frame[EthernetHeaderLen:], &got) {
				t.Error("ChecksumsValid = false")
			}
			if ip, ok := pk.NetworkLayer().(*layers.IPv4); ok && ip.Flags != layers.IPv4DontFragment {
				t.Errorf("IPv4 flags %v, want DF", ip.Flags)
			}
		})
	}
}

// TestBuildReusesBuffer: with room enough Build writes into dst's array,
// clearing what was there, and grows a buffer that is too small.
func TestBuildReusesBuffer(t *testing.T) {
	tpl := &Template{Tuple: Tuple{Src: cli6, Dst: dev6}, Flags: RST, Seq: 1}
	buf := make([]byte, 3, 200)
	for i := range buf[:cap(buf)] {
		buf[:cap(buf)][i] = 0xaa
	}
	frame, err := Build(buf, cliMAC, devMAC, tpl)
	if err != nil {
		t.Fatal(err)
	}
	if &frame[0] != &buf[:1][0] {
		t.Error("Build did not reuse a buffer with enough capacity")
	}
	fresh, err := Build(nil, cliMAC, devMAC, tpl)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fresh, frame); diff != "" {
		t.Errorf("frame in a dirty buffer (-fresh +reused):\n%s", diff)
	}
	small, err := Build(make([]byte, 0, 10), cliMAC, devMAC, tpl)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fresh, small); diff != "" {
		t.Errorf("frame from a small buffer (-fresh +grown):\n%s", diff)
	}
}

func TestBuildErrors(t *testing.T) {
	for _, c := range []struct {
		name     string
		src, dst netip.AddrPort
		want     error
	}{
		{"v4 to v6", cli4, dev6, ErrMixedFamilies},
		{"v6 to v4", cli6, dev4, ErrMixedFamilies},
		{"v4 to v4-mapped", cli4, mapped(dev4), ErrMixedFamilies},
		{"no source", netip.AddrPort{}, dev6, nil},
		{"no destination", cli4, netip.AddrPort{}, nil},
		{"no addresses", netip.AddrPort{}, netip.AddrPort{}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			frame, err := Build(nil, cliMAC, devMAC, &Template{Tuple: Tuple{Src: c.src, Dst: c.dst}, Flags: RST})
			if err == nil {
				t.Fatalf("Build succeeded with frame %x, want an error", frame)
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("Build error %v, want %v", err, c.want)
			}
		})
	}
}
