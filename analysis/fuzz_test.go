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
	// Link types and framings the readers decode, and one they skip.
	for _, link := range []uint32{0, 104, 239, 253} {
		var recs []pcapRecord
		for _, fr := range synthFrames(f)[:4] {
			ip := fr[14:]
			switch link {
			case 0:
				recs = append(recs, pcapRecord{data: append([]byte{2, 0, 0, 0}, ip...)})
			case 104:
				recs = append(recs, pcapRecord{data: append([]byte{0x0f, 0, 8, 0}, ip...)})
			case 239:
				l := 4 + len(ip)
				recs = append(recs, pcapRecord{data: append([]byte{2, 0, 0, 0, byte(l), byte(l >> 8), 9, 0}, ip...)})
			default:
				recs = append(recs, pcapRecord{data: ip})
			}
		}
		b, _ := os.ReadFile(rawPcap(f, link, 65535, recs))
		f.Add(b)
	}
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
		if in.Format != FormatJSONL.String() {
			by := 0
			for _, n := range in.SkippedBy {
				by += n
			}
			if by != in.Skipped {
				t.Errorf("skipped %d, by reason %v", in.Skipped, in.SkippedBy)
			}
		}
		for name, n := range in.Via {
			if n <= 0 || n > in.Segments {
				t.Errorf("via %s: %d of %d segments", name, n, in.Segments)
			}
		}
		if in.Format != FormatJSONL.String() && in.Records > len(data)/16+1 {
			t.Errorf("%d records from %d octets", in.Records, len(data))
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
