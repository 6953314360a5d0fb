// Package capturetest reads the TCP segments of a pcap or pcapng file for
// tests, decoded by segment's decoder, so each test that checks a capture
// does not carry its own reader. It needs no privileges.
package capturetest

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/closeduel/closeduel/segment"
)

// Segment is one TCP segment of a capture.
type Segment struct {
	Seg  segment.Segment
	Data []byte // the whole frame, from its link-layer header on
	At   time.Time
}

// pcapngMagic opens a pcapng file (its Section Header Block's type).
var pcapngMagic = []byte{0x0a, 0x0d, 0x0d, 0x0a}

// Read returns the TCP segments of the pcap or pcapng file at path (told
// apart by their first bytes), in order; frames that do not decode as a
// TCP segment are left out. Any error fails t.
func Read(t testing.TB, path string) []Segment {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	head, _ := br.Peek(len(pcapngMagic))
	var r interface {
		ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	}
	var link layers.LinkType
	if bytes.Equal(head, pcapngMagic) {
		ng, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		r, link = ng, ng.LinkType()
	} else {
		p, err := pcapgo.NewReader(br)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		r, link = p, p.LinkType()
	}
	dec, err := segment.NewDecoder(link)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []Segment
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		s := Segment{Data: data, At: ci.Timestamp}
		if dec.Decode(data, &s.Seg) != nil {
			continue
		}
		out = append(out, s)
	}
}
