package analysis

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/closeduel/closeduel/internal/roottest"
)

// appendToItself writes the pcap at src twice into one file: the second
// copy's timestamps go back to the first's.
func appendToItself(t *testing.T, src, dst string) {
	t.Helper()
	type rec struct {
		ci   gopacket.CaptureInfo
		data []byte
	}
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var recs []rec
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec{ci, data})
	}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	w := pcapgo.NewWriter(out)
	if err := w.WriteFileHeader(r.Snaplen(), r.LinkType()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		for _, x := range recs {
			if err := w.WritePacket(x.ci, x.data); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestTimeGoingBackwards: a capture appended to itself goes back in time
// at the seam. Wireshark's gaps in its retransmission analysis are
// unsigned there (a segment "before" the last advance is not out of
// order, a duplicate ACK "before" is not recent): the counts must still
// equal tshark's on every lab pcap so doubled.
func TestTimeGoingBackwards(t *testing.T) {
	roottest.RequireTools(t, "tshark")
	paths, _ := filepath.Glob("testdata/*.pcap")
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			twice := filepath.Join(t.TempDir(), "twice.pcap")
			appendToItself(t, p, twice)
			r := analyzeFiles(t, Config{}, twice)
			streams, retrans, rsts := tsharkCounts(t, twice)
			want := []int{streams, retrans, rsts}
			got := []int{r.Totals.Connections, r.Totals.Retransmissions, r.Totals.RSTs}
			if !slices.Equal(got, want) {
				t.Errorf("[connections retransmissions RSTs] = %v, tshark %v", got, want)
			}
			t.Logf("tshark %v", want)
		})
	}
}
