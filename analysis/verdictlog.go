package analysis

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"

	"github.com/closeduel/closeduel/segment"
)

// logLine is the part of a verdict-log line the analysis reads. Unknown
// fields and kinds are ignored.
type logLine struct {
	V       int    `json:"v"`
	Kind    string `json:"kind"`
	T       int64  `json:"t"`
	Left    int64  `json:"left"`
	Src     string `json:"src"`
	Dst     string `json:"dst"`
	Sport   uint16 `json:"sport"`
	Dport   uint16 `json:"dport"`
	Flags   string `json:"flags"`
	Seq     uint32 `json:"seq"`
	Ack     uint32 `json:"ack"`
	Win     uint16 `json:"win"`
	Len     int    `json:"len"`
	Rule    string `json:"rule"`
	Action  string `json:"action"`
	Verdict string `json:"verdict"`
	TCP     *bool  `json:"tcp"`
}

// logSource reads a JSON Lines verdict log.
type logSource struct {
	f       *os.File
	br      *bufio.Reader
	info    InputInfo
	index   int
	opt     openOptions
	line    int
	strings map[string]string
	buf     []byte // a line longer than the reader's buffer
}

func newLogSource(f *os.File, br *bufio.Reader, path string, index int, opt openOptions) *logSource {
	s := &logSource{f: f, br: br, index: index, opt: opt,
		info: InputInfo{Path: path, Format: FormatJSONL.String(), Role: "packets"}}
	if opt.verdictsOnly {
		s.info.Role = "verdicts"
	}
	return s
}

func (s *logSource) stats() *InputInfo { return &s.info }
func (s *logSource) close() error      { return s.f.Close() }

func (s *logSource) next(ev *Event) error {
	for {
		raw, err := s.readLine()
		if len(raw) == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				return io.EOF
			}
			if errors.Is(err, errLongLine) {
				s.line++
				s.info.Records++
				s.info.Skipped++
				s.info.warn("line %d: %v: skipped", s.line, err)
				continue
			}
			return fmt.Errorf("analysis: %s: line %d: %w", s.info.Path, s.line+1, err)
		}
		s.line++
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 {
			continue
		}
		s.info.Records++
		var l logLine
		if err := json.Unmarshal(raw, &l); err != nil {
			s.info.Skipped++
			s.info.warn("line %d: not a JSON object: %v", s.line, err)
			continue
		}
		var note Note
		switch l.Kind {
		case "verdict":
			note.Kind = NoteVerdict
			note.Drop = l.Verdict == "drop"
		case "duplicate":
			note.Kind = NoteDuplicate
		case "injected":
			note.Kind = NoteInjected
		default:
			continue // start, rules, toggle, summary and kinds to come
		}
		if l.TCP != nil && !*l.TCP {
			s.info.Skipped++
			continue
		}
		seg, err := l.segment()
		if err != nil {
			s.info.Skipped++
			s.info.warn("line %d: %v", s.line, err)
			continue
		}
		note.Action = s.intern(l.Action)
		note.Rule = s.intern(l.Rule)
		ev.Seg = seg
		ev.Note = note
		ev.Input = s.index
		ev.Time = l.Left
		if ev.Time == 0 {
			ev.Time = l.T
		}
		ev.Kind = EventPacket
		ev.Counted = true
		if s.opt.verdictsOnly {
			ev.Kind = EventVerdict
		}
		s.info.Segments++
		return nil
	}
}

// errLongLine is a line longer than MaxLineSize.
var errLongLine = fmt.Errorf("longer than the %d-octet limit for one line", MaxLineSize)

// readLine returns the next line, without holding more than MaxLineSize
// octets of it: a longer line is read to its end and dropped, and
// errLongLine returned. The line is valid until the next call.
func (s *logSource) readLine() ([]byte, error) {
	s.buf = s.buf[:0]
	for {
		frag, err := s.br.ReadSlice('\n')
		if len(s.buf)+len(frag) > MaxLineSize {
			s.buf = s.buf[:0]
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = s.br.ReadSlice('\n')
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, err
			}
			return nil, errLongLine
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			s.buf = append(s.buf, frag...)
			continue
		}
		if len(s.buf) == 0 {
			return frag, err // the common case: the line is in the reader's buffer
		}
		s.buf = append(s.buf, frag...)
		return s.buf, err
	}
}

func (l *logLine) segment() (segment.Segment, error) {
	src, err := netip.ParseAddr(l.Src)
	if err != nil {
		return segment.Segment{}, fmt.Errorf("bad src %q", l.Src)
	}
	dst, err := netip.ParseAddr(l.Dst)
	if err != nil {
		return segment.Segment{}, fmt.Errorf("bad dst %q", l.Dst)
	}
	flags, ok := segment.ParseFlags(l.Flags)
	if !ok {
		return segment.Segment{}, fmt.Errorf("bad flags %q", l.Flags)
	}
	return segment.Segment{
		Src:         netip.AddrPortFrom(src, l.Sport),
		Dst:         netip.AddrPortFrom(dst, l.Dport),
		Flags:       flags,
		Seq:         segment.Seq(l.Seq),
		Ack:         segment.Seq(l.Ack),
		Window:      l.Win,
		PayloadLen:  l.Len,
		WindowScale: -1,
	}, nil
}

func (s *logSource) intern(v string) string {
	if v == "" {
		return ""
	}
	if w, ok := s.strings[v]; ok {
		return w
	}
	if s.strings == nil {
		s.strings = make(map[string]string)
	}
	s.strings[v] = v
	return v
}
