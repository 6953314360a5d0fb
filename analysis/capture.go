package analysis

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"strings"

	"github.com/closeduel/closeduel/segment"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// captureSource reads a pcap or pcapng file.
type captureSource struct {
	f         *os.File
	guard     *recordGuard
	pcap      *pcapgo.Reader
	ng        *pcapgo.NgReader
	info      InputInfo
	index     int
	opt       openOptions
	link      layers.LinkType
	dec       *segment.Decoder
	decs      map[layers.LinkType]*segment.Decoder // pcapng with several link types
	strings   map[string]string                    // interned rule and action names
	snaplen   int                                  // the file's (first interface's) snap length
	skips     [numSkips]int                        // skipped records by reason
	linkSkips map[layers.LinkType]int              // records skipped for their link type
	via       [16]int                              // segments by segment.Via bit
	cutMax    int                                  // longest record cut by the snap length
	cutHinted bool
}

// Why a record was skipped.
const (
	skipNotTCP    = iota // not TCP, or an IP fragment after the first
	skipCut              // cut by the snap length before the end of its TCP header
	skipMalformed        // a header that does not decode
	numSkips
)

var skipNames = [numSkips]string{"not tcp", "cut by snap length", "malformed"}

func newCaptureSource(f *os.File, br *bufio.Reader, path string, index int, format Format, opt openOptions) (*captureSource, error) {
	s := &captureSource{f: f, index: index, opt: opt, guard: newRecordGuard(br, format),
		info: InputInfo{Path: path, Format: format.String(), Role: "packets"}}
	var err error
	if format == FormatPcap {
		s.pcap, err = pcapgo.NewReader(s.guard)
		if err == nil {
			s.link = s.pcap.LinkType()
			s.snaplen = int(s.pcap.Snaplen())
		}
	} else {
		s.ng, err = pcapgo.NewNgReader(s.guard, pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err == nil && s.ng.NInterfaces() > 0 {
			iface, _ := s.ng.Interface(0)
			s.link = iface.LinkType
			s.snaplen = int(iface.SnapLength)
		}
	}
	if err != nil {
		if s.guard.err != nil {
			err = s.guard.err
		}
		return nil, fmt.Errorf("analysis: %s: read %s header: %w", path, format, err)
	}
	if s.pcap != nil || s.ng.NInterfaces() > 0 {
		s.info.LinkType = s.link.String()
	}
	s.dec = s.decoder(s.link)
	return s, nil
}

// decoder returns the decoder for a link type, nil for one that is not
// decoded (its records are skipped and counted by link type).
func (s *captureSource) decoder(lt layers.LinkType) *segment.Decoder {
	if lt == s.link && s.dec != nil {
		return s.dec
	}
	if d, ok := s.decs[lt]; ok {
		return d
	}
	d, err := segment.NewDecoder(lt)
	if err != nil {
		d = nil
	}
	if s.decs == nil {
		s.decs = make(map[layers.LinkType]*segment.Decoder)
	}
	s.decs[lt] = d
	return d
}

// stats reports what was read, with skipped records by reason, segments by
// encapsulation, and a hint when the snap length cut records short.
func (s *captureSource) stats() *InputInfo {
	in := &s.info
	in.SkippedBy = nil
	for i, n := range s.skips {
		if n > 0 {
			in.skippedBy(skipNames[i], n)
		}
	}
	for lt, n := range s.linkSkips {
		name := fmt.Sprintf("link type %s (%d) not decoded", lt, uint16(lt))
		if strings.HasPrefix(lt.String(), "Unknown") {
			name = fmt.Sprintf("link type %d not decoded", uint16(lt))
		}
		in.skippedBy(name, n)
	}
	in.Via = nil
	for i, n := range s.via {
		if n > 0 && i < len(segment.ViaNames()) {
			if in.Via == nil {
				in.Via = make(map[string]int)
			}
			in.Via[segment.ViaNames()[i]] = n
		}
	}
	if n := s.skips[skipCut]; n > 0 && !s.cutHinted {
		s.cutHinted = true
		snap := s.snaplen
		if snap == 0 || snap > s.cutMax {
			snap = s.cutMax
		}
		in.warn("%d records were cut by the capture's snap length (%d octets) before the end of their TCP header and skipped: capture with a snap length of at least 128 octets (tcpdump -s 128, or -s 0 for whole packets)", n, snap)
	}
	return in
}

func (s *captureSource) close() error { return s.f.Close() }

func (s *captureSource) next(ev *Event) error {
	for {
		var (
			data     []byte
			ci       gopacket.CaptureInfo
			err      error
			comments []string
		)
		dec, lt := s.dec, s.link
		if s.pcap != nil {
			data, ci, err = s.pcap.ZeroCopyReadPacketData()
		} else {
			var opts pcapgo.NgPacketOptions
			data, ci, opts, err = s.ng.ZeroCopyReadPacketDataWithOptions()
			comments = opts.Comments
			if err == nil && len(ci.AncillaryData) > 0 {
				if l, ok := ci.AncillaryData[0].(layers.LinkType); ok {
					dec, lt = s.decoder(l), l
					if s.info.LinkType == "" {
						s.info.LinkType = l.String()
					}
				}
			}
		}
		if err != nil {
			return s.readErr(err)
		}
		s.info.Records++
		if dec == nil {
			s.info.Skipped++
			if s.linkSkips == nil {
				s.linkSkips = make(map[layers.LinkType]int)
			}
			s.linkSkips[lt]++
			continue
		}
		if err := dec.DecodeWire(data, ci.Length, &ev.Seg); err != nil {
			s.info.Skipped++
			switch {
			case err == segment.ErrNotTCP:
				s.skips[skipNotTCP]++
			case errors.Is(err, segment.ErrTruncated) && ci.CaptureLength < ci.Length:
				s.skips[skipCut]++
				s.cutMax = max(s.cutMax, ci.CaptureLength)
			default:
				s.skips[skipMalformed]++
			}
			continue
		}
		for v := ev.Seg.Via; v != 0; v &= v - 1 {
			s.via[bits.TrailingZeros16(uint16(v))]++
		}
		ev.Kind = EventPacket
		ev.Time = ci.Timestamp.UnixNano()
		ev.Input = s.index
		ev.Note = Note{}
		ev.Counted = s.opt.countComments
		for _, c := range comments {
			if n, ok := s.parseComment(c); ok {
				ev.Note = n
				break
			}
		}
		s.info.Segments++
		return nil
	}
}

// readErr turns a read error into the end of the input: everything
// before it is analysed and a warning says why the rest was not read. Only
// a file beyond MaxInterfaces is refused with an error.
func (s *captureSource) readErr(err error) error {
	if errors.Is(err, io.EOF) {
		return io.EOF
	}
	var lim *limitError
	if !errors.As(err, &lim) && !errors.As(s.guard.err, &lim) {
		lim = nil
	}
	switch {
	case lim != nil && lim.what == "interfaces":
		return fmt.Errorf("analysis: %s: after record %d: %w", s.info.Path, s.info.Records, lim)
	case lim != nil:
		s.info.warn("record %d: %v: the rest of the file was not read", s.info.Records+1, lim)
	case errors.Is(err, io.ErrUnexpectedEOF):
		s.info.warn("truncated after record %d: the rest of the file was not read", s.info.Records)
	default:
		s.info.warn("record %d: %v: the rest of the file was not read", s.info.Records+1, err)
	}
	return io.EOF
}

// parseComment reads closeduel's packet comment, e.g.
// "closeduel verdict=drop action=drop rule=lost-ack conn=12 dir=client>device held=0s"
// or "closeduel injected action=inject rule=NAME ...".
func (s *captureSource) parseComment(c string) (Note, bool) {
	rest, ok := strings.CutPrefix(c, "closeduel ")
	if !ok {
		return Note{}, false
	}
	var n Note
	for i, field := range strings.Fields(rest) {
		key, val, hasVal := strings.Cut(field, "=")
		if i == 0 && !hasVal {
			switch key {
			case "injected":
				n.Kind = NoteInjected
			case "duplicate":
				n.Kind = NoteDuplicate
			default:
				return Note{}, false
			}
			continue
		}
		switch key {
		case "verdict":
			n.Kind = NoteVerdict
			n.Drop = val == "drop"
		case "action":
			n.Action = s.intern(val)
		case "rule":
			if val != "-" {
				n.Rule = s.intern(val)
			}
		}
	}
	if n.Kind == NoteNone {
		return Note{}, false
	}
	return n, true
}

func (s *captureSource) intern(v string) string {
	if w, ok := s.strings[v]; ok {
		return w
	}
	if s.strings == nil {
		s.strings = make(map[string]string)
	}
	s.strings[v] = v
	return v
}
