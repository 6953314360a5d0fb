package nfq

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/closeduel/closeduel/segment"
	"github.com/closeduel/closeduel/topology"
)

// rewriteMarked rewrites the window of segments whose window is marker, and
// asks for the checksums' repair when repair is set.
type rewriteMarked struct {
	marker uint16
	repair bool
}

func (r rewriteMarked) Decide(p *Packet, dc *Decision) {
	if p.Seg.Window != r.marker {
		return
	}
	if segment.SetWindow(p.Data, &p.Seg, 77) == nil {
		dc.Modified, dc.RepairChecksums, dc.Rewrote, dc.Rule, dc.Action = true, r.repair, "window=77", "rw", "rewrite"
	}
}

// TestRewriteKeepsABadChecksumBad: a segment with a corrupt TCP checksum
// that a rule rewrites leaves with a checksum that is still wrong (by the
// same amount), unless the rule asks for the repair; then it leaves valid.
// The engine used to recompute every rewritten checksum, so a corrupt
// segment became one the receiver accepts.
func TestRewriteKeepsABadChecksumBad(t *testing.T) {
	for _, repair := range []bool{false, true} {
		name := "kept bad"
		if repair {
			name = "repaired"
		}
		t.Run(name, func(t *testing.T) {
			const marker = 4321
			b := newBench(t, rewriteMarked{marker: marker, repair: repair})
			atDevice := capture(t, b.topo.Bridge, topology.DevicePort)
			ln := b.listen(t, 80)
			go serveHTTPClose(ln)
			if _, err := b.headRequest(80); err != nil { // learn the MACs
				t.Fatal(err)
			}
			cliMAC, devMAC := b.macs(t)
			frame, err := segment.Build(nil, cliMAC, devMAC, &segment.Template{
				Tuple: segment.Tuple{Src: mustAddrPort(clientIP + ":4444"), Dst: mustAddrPort(deviceIP + ":80")},
				Flags: segment.ACK, Seq: 1, Ack: 1, Window: marker,
			})
			if err != nil {
				t.Fatal(err)
			}
			csum := segment.EthernetHeaderLen + 20 + 16
			good := binary.BigEndian.Uint16(frame[csum:])
			binary.BigEndian.PutUint16(frame[csum:], good^0x00ff) // corrupt
			if err := b.sendFrames(devMAC, frame); err != nil {
				t.Fatal(err)
			}
			atDevice.waitQuiet(200 * time.Millisecond)
			atDevice.mu.Lock()
			defer atDevice.mu.Unlock()
			var got []byte // ours: same addresses, ports and sequence number
			for _, f := range atDevice.frames {
				if len(f.data) == len(frame) && bytes.Equal(f.data[:segment.EthernetHeaderLen+20+8], frame[:segment.EthernetHeaderLen+20+8]) {
					got = f.data
				}
			}
			if got == nil {
				t.Fatalf("the crafted segment did not reach the device port (%d frames seen)", len(atDevice.frames))
			}
			ip := got[segment.EthernetHeaderLen:]
			seg := segment.Segment{IPHeaderLen: 20, TCPHeaderLen: 20}
			if w := binary.BigEndian.Uint16(ip[20+14:]); w != 77 {
				t.Fatalf("window at the device %d, want 77 (rewritten)", w)
			}
			valid := segment.ChecksumsValid(ip, &seg)
			if repair && !valid {
				t.Fatal("repair-checksum: the checksum is still bad")
			}
			if !repair && valid {
				t.Fatal("a segment with a corrupt checksum left the bridge with a valid one after a rewrite")
			}
		})
	}
}
