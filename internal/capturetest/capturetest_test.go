package capturetest

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/closeduel/closeduel/segment"
)

// TestReadsPcapAndPcapng writes the same frames (one TCP segment, one
// frame that is not TCP, another TCP segment) as pcap and as pcapng and
// expects the two TCP segments back from each, with their times.
func TestReadsPcapAndPcapng(t *testing.T) {
	mac := []byte{2, 0, 0, 0, 0, 1}
	var frames [][]byte
	for _, port := range []uint16{1001, 0, 1002} {
		if port == 0 {
			frames = append(frames, append(append(append([]byte(nil), mac...), mac...), 0x08, 0x06, 0, 1)) // ARP, cut short
			continue
		}
		f, err := segment.Build(nil, mac, mac, &segment.Template{
			Tuple: segment.Tuple{Src: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), port), Dst: netip.MustParseAddrPort("10.0.0.2:80")},
			Flags: segment.SYN, Seq: 7,
		})
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, f)
	}
	base := time.Unix(1700000000, 0).UTC()
	dir := t.TempDir()
	for _, name := range []string{"c.pcap", "c.pcapng"} {
		path := filepath.Join(dir, name)
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		var write func(gopacket.CaptureInfo, []byte) error
		var flush func() error
		if filepath.Ext(name) == ".pcapng" {
			w, err := pcapgo.NewNgWriter(f, layers.LinkTypeEthernet)
			if err != nil {
				t.Fatal(err)
			}
			write, flush = w.WritePacket, w.Flush
		} else {
			w := pcapgo.NewWriter(f)
			if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
				t.Fatal(err)
			}
			write, flush = w.WritePacket, func() error { return nil }
		}
		for i, fr := range frames {
			if err := write(gopacket.CaptureInfo{Timestamp: base.Add(time.Duration(i) * time.Second), CaptureLength: len(fr), Length: len(fr)}, fr); err != nil {
				t.Fatal(err)
			}
		}
		if err := flush(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		got := Read(t, path)
		if len(got) != 2 {
			t.Fatalf("%s: %d segments, want 2", name, len(got))
		}
		for i, want := range []struct {
			port uint16
			at   time.Time
		}{{1001, base}, {1002, base.Add(2 * time.Second)}} {
			if got[i].Seg.Src.Port() != want.port || got[i].Seg.Flags != segment.SYN || got[i].Seg.Seq != 7 || !got[i].At.Equal(want.at) {
				t.Errorf("%s: segment %d: port %d flags %v seq %d at %v; want port %d SYN seq 7 at %v", name, i, got[i].Seg.Src.Port(), got[i].Seg.Flags, got[i].Seg.Seq, got[i].At, want.port, want.at)
			}
		}
	}
}
