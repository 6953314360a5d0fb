package nfq

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/closeduel/closeduel/segment"
	"github.com/closeduel/closeduel/topology"
)

// TestIPv6ExtensionHeadersReachTheRules is issue 12's defect through the
// real queue: IPv6 TCP segments behind a Destination Options or Routing
// header used to count as non-TCP and pass, so a drop rule never saw them.
// Now the FINs among them are dropped and the ACKs pass, each with a
// verdict on a decoded TCP segment.
func TestIPv6ExtensionHeadersReachTheRules(t *testing.T) {
	b := newBench(t, dropFINs{})
	atDevice := capture(t, b.topo.Bridge, topology.DevicePort)
	cliMAC, devMAC := b.macs(t)
	exts := []struct {
		code byte
		hdr  []byte
	}{
		{60, []byte{6, 0, 1, 4, 0, 0, 0, 0}}, // Destination Options, PadN
		{43, []byte{6, 0, 4, 0, 0, 0, 0, 0}}, // Routing, type 4 with no segments left
	}
	var frames [][]byte
	for i := range 4 {
		flags := segment.ACK
		if i%2 == 1 {
			flags = segment.FIN | segment.ACK
		}
		f, err := segment.Build(nil, cliMAC, devMAC, &segment.Template{
			Tuple: segment.Tuple{Src: mustAddrPort("[fd00:77::1]:" + itoa(42000+i)), Dst: mustAddrPort("[fd00:77::2]:80")},
			Flags: flags, Seq: 1000, Ack: 1, Window: 100,
		})
		if err != nil {
			t.Fatal(err)
		}
		e := exts[i/2]
		ip := f[segment.EthernetHeaderLen:]
		out := append(append(append([]byte(nil), f[:segment.EthernetHeaderLen+40]...), e.hdr...), ip[40:]...)
		oip := out[segment.EthernetHeaderLen:]
		oip[6] = e.code // the TCP checksum does not cover extension headers
		binary.BigEndian.PutUint16(oip[4:], binary.BigEndian.Uint16(oip[4:])+uint16(len(e.hdr)))
		frames = append(frames, out)
	}
	before := b.engine.Stats().Packets
	if err := b.sendFrames(devMAC, frames...); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.engine.Stats().Packets-before < uint64(len(frames)) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	arrived := func() map[uint16]bool {
		out := map[uint16]bool{}
		for _, s := range atDevice.segments(t) {
			if s.Seg.Via&segment.ViaIPv6Ext != 0 {
				out[s.Seg.Src.Port()] = true
			}
		}
		return out
	}
	for len(arrived()) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	atDevice.waitQuiet(200 * time.Millisecond)
	got := arrived()
	verdicts := map[uint16]Verdict{}
	for _, ev := range b.rec.snapshot() {
		if ev.Kind == EventVerdict && ev.TCP && ev.Seg.Via&segment.ViaIPv6Ext != 0 {
			verdicts[ev.Seg.Src.Port()] = ev.Verdict
		}
	}
	for i := range frames {
		port := uint16(42000 + i)
		fin := i%2 == 1
		v, ok := verdicts[port]
		switch {
		case !ok:
			t.Errorf("port %d: no verdict on a decoded TCP segment", port)
		case fin && v != Drop:
			t.Errorf("port %d FIN: verdict %v, want drop", port, v)
		case !fin && v != Accept:
			t.Errorf("port %d ACK: verdict %v, want accept", port, v)
		}
		if got[port] == fin {
			t.Errorf("port %d (FIN %v): reached the device port: %v", port, fin, got[port])
		}
	}
}
