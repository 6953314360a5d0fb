package analysis

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Format is the kind of an input file.
type Format uint8

// Input formats.
const (
	FormatUnknown Format = iota
	FormatPcap           // libpcap, any byte order, µs or ns timestamps
	FormatPcapng         // pcapng, possibly with closeduel's verdict comments
	FormatJSONL          // closeduel's JSON Lines verdict log
)

// String names the format.
func (f Format) String() string {
	switch f {
	case FormatPcap:
		return "pcap"
	case FormatPcapng:
		return "pcapng"
	case FormatJSONL:
		return "jsonl"
	}
	return "unknown"
}

// DetectFormat tells the format from the first bytes of a file.
func DetectFormat(head []byte) Format {
	if len(head) >= 4 {
		switch binary.LittleEndian.Uint32(head) {
		case 0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1:
			return FormatPcap
		case 0x0a0d0d0a:
			return FormatPcapng
		}
	}
	if t := bytes.TrimLeft(head, " \t\r\n\ufeff"); len(t) > 0 && t[0] == '{' {
		return FormatJSONL
	}
	return FormatUnknown
}

// source yields the events of one input in file order.
type source interface {
	// next fills ev and returns nil, io.EOF at the end, or an error.
	next(ev *Event) error
	// stats reports what the source read so far.
	stats() *InputInfo
	close() error
}

// InputInfo describes one input and what was read from it.
type InputInfo struct {
	Path   string `json:"path"`
	Format string `json:"format"`
	// LinkType is the capture's link type name (captures only).
	LinkType string `json:"link_type,omitempty"`
	// Records is the number of packets (captures) or lines (logs) read.
	Records int `json:"records"`
	// Segments is the number of TCP segments (or verdicts) taken from it.
	Segments int `json:"segments"`
	// Skipped counts records that were not TCP or did not decode.
	Skipped int `json:"skipped"`
	// SkippedBy splits Skipped by reason (captures): "not tcp", "cut by
	// snap length", "malformed", "link type NAME (N) not decoded".
	SkippedBy map[string]int `json:"skipped_by,omitempty"`
	// Via counts the segments that came through each encapsulation or
	// special case (segment.Via names: "vlan", "gre", "fragment", ...);
	// plain segments are not counted here.
	Via map[string]int `json:"via,omitempty"`
	// Role is "packets" when the input supplies the segments, "verdicts"
	// when a capture supplies them and this log only annotates.
	Role string `json:"role"`
	// Warnings holds problems that did not stop the analysis (a truncated
	// last record, lines that are not JSON); at most a few are kept.
	Warnings []string `json:"warnings,omitempty"`
	// WarningsOmitted counts the warnings beyond those kept.
	WarningsOmitted int `json:"warnings_omitted,omitempty"`
}

const maxWarnings = 5

// skippedBy records n skipped records for a reason.
func (in *InputInfo) skippedBy(reason string, n int) {
	if in.SkippedBy == nil {
		in.SkippedBy = make(map[string]int)
	}
	in.SkippedBy[reason] += n
}

func (in *InputInfo) warn(format string, args ...any) {
	if len(in.Warnings) >= maxWarnings {
		in.WarningsOmitted++
		return
	}
	in.Warnings = append(in.Warnings, fmt.Sprintf(format, args...))
}

// openOptions tells an input how it is used among the others.
type openOptions struct {
	// verdictsOnly turns a log's events into EventVerdict annotations.
	verdictsOnly bool
	// countComments makes pcapng comments count as verdicts; they always
	// mark drops.
	countComments bool
}

// fileFormat opens path and detects its format.
func fileFormat(path string) (Format, error) {
	f, err := os.Open(path)
	if err != nil {
		return FormatUnknown, fmt.Errorf("analysis: %w", err)
	}
	defer f.Close()
	head := make([]byte, 64)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return FormatUnknown, fmt.Errorf("analysis: %s: %w", path, err)
	}
	format := DetectFormat(head[:n])
	if format == FormatUnknown {
		if n == 0 {
			return format, fmt.Errorf("analysis: %s: empty file", path)
		}
		return format, fmt.Errorf("analysis: %s: not a pcap, pcapng or JSON Lines file", path)
	}
	return format, nil
}

// openSource opens one input of a known format.
func openSource(path string, index int, format Format, opt openOptions) (source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("analysis: %w", err)
	}
	br := bufio.NewReaderSize(f, 1<<20)
	var s source
	switch format {
	case FormatPcap, FormatPcapng:
		s, err = newCaptureSource(f, br, path, index, format, opt)
	case FormatJSONL:
		s = newLogSource(f, br, path, index, opt)
	default:
		err = fmt.Errorf("analysis: %s: unknown format", path)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}
