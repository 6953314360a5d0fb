package analysis

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/closeduel/closeduel/segment"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// captureSource reads a pcap or pcapng file.
type captureSource struct {
	f       *os.File
	pcap    *pcapgo.Reader
	ng      *pcapgo.NgReader
	info    InputInfo
	index   int
	opt     openOptions
	link    layers.LinkType
	dec     *segment.Decoder
	decs    map[layers.LinkType]*segment.Decoder // pcapng with several link types
	strings map[string]string                    // interned rule and action names
}

func newCaptureSource(f *os.File, br *bufio.Reader, path string, index int, format Format, opt openOptions) (*captureSource, error) {
	s := &captureSource{f: f, index: index, opt: opt,
		info: InputInfo{Path: path, Format: format.String(), Role: "packets"}}
	var err error
	if format == FormatPcap {
		s.pcap, err = pcapgo.NewReader(br)
		if err == nil {
			s.link = s.pcap.LinkType()
		}
	} else {
		s.ng, err = pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err == nil && s.ng.NInterfaces() > 0 {
			iface, _ := s.ng.Interface(0)
			s.link = iface.LinkType
		}
	}
	if err != nil {
		return nil, fmt.Errorf("analysis: %s: read %s header: %w", path, format, err)
	}
	if s.pcap != nil || s.ng.NInterfaces() > 0 {
		s.info.LinkType = s.link.String()
	}
	if s.dec, err = segment.NewDecoder(s.link); err != nil && format == FormatPcap {
		return nil, fmt.Errorf("analysis: %s: %w", path, err)
	}
	return s, nil
}

func (s *captureSource) stats() *InputInfo { return &s.info }
func (s *captureSource) close() error      { return s.f.Close() }

// decoder returns the decoder for a pcapng interface's link type.
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

func (s *captureSource) next(ev *Event) error {
	for {
		var (
			data     []byte
			ci       gopacket.CaptureInfo
			err      error
			comments []string
		)
		dec := s.dec
		if s.pcap != nil {
			data, ci, err = s.pcap.ZeroCopyReadPacketData()
		} else {
			var opts pcapgo.NgPacketOptions
			data, ci, opts, err = s.ng.ZeroCopyReadPacketDataWithOptions()
			comments = opts.Comments
			if err == nil && len(ci.AncillaryData) > 0 {
				if lt, ok := ci.AncillaryData[0].(layers.LinkType); ok {
					dec = s.decoder(lt)
					if s.info.LinkType == "" {
						s.info.LinkType = lt.String()
					}
				}
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return io.EOF
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				s.info.warn("truncated after record %d: the rest of the file was not read", s.info.Records)
				return io.EOF
			}
			return fmt.Errorf("analysis: %s: record %d: %w", s.info.Path, s.info.Records+1, err)
		}
		s.info.Records++
		if dec == nil {
			s.info.Skipped++
			continue
		}
		if err := dec.Decode(data, &ev.Seg); err != nil {
			s.info.Skipped++
			continue
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
