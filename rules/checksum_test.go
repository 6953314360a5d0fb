package rules

import (
	"encoding/binary"
	"testing"

	"github.com/closeduel/closeduel/nfq"
	"github.com/closeduel/closeduel/segment"
)

// TestRewriteKeepsABadChecksumBadUnlessAsked: the decider's rewrite leaves
// a segment's checksum as right or as wrong as it was; repair-checksum
// asks the engine to recompute it.
func TestRewriteKeepsABadChecksumBadUnlessAsked(t *testing.T) {
	for _, tc := range []struct {
		name, do string
		repair   bool
		rewrote  string
	}{
		{"rewrite", "{ rewrite: { window: 100 } }", false, "window=100"},
		{"rewrite and repair", "{ rewrite: { window: 100, repair-checksum: true } }", true, "window=100, checksum repaired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := mustParse(t, head+"  - { name: rw, when: { from: device, has: [FIN] }, do: "+tc.do+" }\n")
			d := NewDecider(f, Options{})
			w := newWire(t)
			p := w.pkt("d", "FIN+ACK", 5101, 1021, 0)
			at := p.Seg.IPHeaderLen + 16
			binary.BigEndian.PutUint16(p.Data[at:], binary.BigEndian.Uint16(p.Data[at:])^0x1111)
			var dec nfq.Decision
			d.Decide(p, &dec)
			if !dec.Modified || dec.RepairChecksums != tc.repair || dec.Rewrote != tc.rewrote {
				t.Fatalf("decision: modified %v, repair %v, rewrote %q; want true, %v, %q", dec.Modified, dec.RepairChecksums, dec.Rewrote, tc.repair, tc.rewrote)
			}
			if p.Seg.Window != 100 {
				t.Fatalf("window %d, want 100", p.Seg.Window)
			}
			if segment.ChecksumsValid(p.Data, &p.Seg) {
				t.Error("the decider's rewrite made a bad checksum good (the repair is the engine's, when asked)")
			}
		})
	}
}
