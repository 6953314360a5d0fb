package analysis

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/gopacket/gopacket/layers"
)

// FuzzInput feeds arbitrary bytes as an input file. Whatever they are,
// the analysis either refuses the file with an error or accounts for
// every record it read: each is a segment or skipped, and every segment
// is in the totals.
func FuzzInput(f *testing.F) {
	s := newSynth()
	scenarios[1].build(s)
	dir := f.TempDir()
	for _, seed := range []struct {
		name string
		link layers.LinkType
	}{{"eth.pcap", layers.LinkTypeEthernet}, {"raw.pcap", layers.LinkTypeRaw}, {"sll2.pcap", layers.LinkTypeLinuxSLL2}} {
		p := filepath.Join(dir, seed.name)
		s.writePcap(f, p, seed.link)
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	ng := filepath.Join(dir, "x.pcapng")
	s.writePcapng(f, ng)
	b, _ := os.ReadFile(ng)
	f.Add(b)
	log := filepath.Join(dir, "x.jsonl")
	s.writeLog(f, log)
	b, _ = os.ReadFile(log)
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "in")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := Analyze(context.Background(), Config{}, []string{p})
		if err != nil {
			return
		}
		in := r.Inputs[0]
		if in.Format != FormatJSONL.String() && in.Records != in.Segments+in.Skipped {
			t.Errorf("%d records but %d segments and %d skipped", in.Records, in.Segments, in.Skipped)
		}
		if r.Totals.Segments != in.Segments {
			t.Errorf("input has %d segments, totals %d", in.Segments, r.Totals.Segments)
		}
		closes := 0
		for _, n := range r.Totals.Closes {
			closes += n
		}
		if closes != r.Totals.Connections || r.Totals.CleanCloses > r.Totals.Connections {
			t.Errorf("closes %v do not add up to %d connections (%d clean)", r.Totals.Closes, r.Totals.Connections, r.Totals.CleanCloses)
		}
	})
}
