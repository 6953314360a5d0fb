package verdictlog

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/closeduel/closeduel/nfq"
	"github.com/closeduel/closeduel/vlanmark"
)

// ne is the byte order NgWriter writes the section in.
var ne = binary.LittleEndian

// InterfaceName is the name of the one interface in every capture.
const InterfaceName = "closeduel"

// pcapOut writes event records as pcapng enhanced packet blocks. The
// section header, the interface description and the closing statistics go
// through gopacket's NgWriter; the packet blocks are encoded here into a
// reused buffer, because NgWriter allocates for every packet (it builds an
// option slice and boxes each option value).
type pcapOut struct {
	out     *fileOut // below the NgWriter's own small buffer
	ng      *pcapgo.NgWriter
	comment []byte // reused comment buffer
	block   []byte // reused enhanced packet block
	frame   []byte // reused Ethernet frame of a tagged packet
	snapLen int
	start   time.Time
	// vlanIntf is where the description of interface VLANInterfaceName
	// is: not written, in p.block (encode put it there), in the file's
	// buffer, or flushed. A failed flush drops the buffer, and with it the
	// description, which the next tagged record then writes again.
	vlanIntf intfState
}

// intfState says where an interface description block is.
type intfState uint8

const (
	intfNone intfState = iota
	intfInBlock
	intfBuffered
	intfFlushed
)

// newPcapOut writes the section header and the interface description
// block to w and flushes them.
func newPcapOut(out *fileOut, snapLen int, version string, start time.Time) (*pcapOut, error) {
	p := &pcapOut{out: out, comment: make([]byte, 0, 256), block: make([]byte, 0, 2048), frame: make([]byte, 0, snapLen+vlanHeaderLen), snapLen: snapLen, start: start}
	intf := pcapgo.NgInterface{
		Name:                InterfaceName,
		Description:         "packets as the closeduel NFQUEUE middlebox let them go (or dropped them)",
		OS:                  runtime.GOOS,
		LinkType:            layers.LinkTypeRaw,
		SnapLength:          uint32(snapLen),
		TimestampResolution: 9,
	}
	info := pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{
		Application: userAppl(version),
		Hardware:    runtime.GOARCH,
		OS:          runtime.GOOS,
	}}
	ng, err := pcapgo.NewNgWriterInterface(p.out, intf, info)
	if err != nil {
		return nil, fmt.Errorf("pcapng header: %w", err)
	}
	p.ng = ng
	if err := p.flush(); err != nil {
		return nil, err
	}
	return p, nil
}

// userAppl is the section header's shb_userappl: "closeduel <version>".
func userAppl(version string) string {
	if version == "" {
		return "closeduel"
	}
	return "closeduel " + version
}

// VLANInterfaceName is the name of the capture's second interface, of
// link type Ethernet, which holds the packets that carried a VLAN tag on
// the bridge: each as an Ethernet frame with that tag, so Wireshark shows
// vlan.id (ieee8021ad.id for an 802.1ad tag). Its description block comes just before the first such
// packet; a capture without tagged packets has only InterfaceName.
const VLANInterfaceName = "closeduel-vlan"

// vlanHeaderLen is the Ethernet header with one VLAN tag.
const vlanHeaderLen = 18

// encode builds the frame of r in p.block; drops, when non-zero, is the
// number of events lost just before it and goes into the frame's
// epb_dropcount. It allocates nothing.
func (p *pcapOut) encode(r *record, drops uint64) {
	p.comment = appendComment(p.comment[:0], r)
	p.block = p.block[:0]
	if !r.vlan.Tagged() {
		p.block = appendEPB(p.block, 0, r.left, r.data, r.origLen, p.comment, drops)
		return
	}
	if p.vlanIntf == intfNone {
		p.block = appendVLANIDB(p.block, p.snapLen+vlanHeaderLen)
		p.vlanIntf = intfInBlock
	}
	p.frame = appendVLANFrame(p.frame[:0], r.dstMAC, r.srcMAC, r.vlan, r.data)
	p.block = appendEPB(p.block, 1, r.left, p.frame, r.origLen+vlanHeaderLen, p.comment, drops)
}

// wrote tells p that p.block went into the file's buffer.
func (p *pcapOut) wrote() {
	if p.vlanIntf == intfInBlock {
		p.vlanIntf = intfBuffered
	}
}

// appendVLANFrame appends an Ethernet frame from src to dst for IP packet
// ip with tag t. The queue hands over the IP packet without its Ethernet
// header: the addresses are those the engine learned (nfq.Event.SrcMAC),
// zero while unknown.
func appendVLANFrame(b []byte, dst, src [6]byte, t vlanmark.Tag, ip []byte) []byte {
	etherType := uint16(0x0800)
	if len(ip) > 0 && ip[0]>>4 == 6 {
		etherType = 0x86dd
	}
	return append(t.AppendEthernet(b, dst, src, etherType), ip...)
}

// pcapng interface description block and its options.
const (
	blockIDB        = 1
	optIfName       = 2
	optIfDesc       = 3
	optIfTsresol    = 9
	vlanDescription = "packets that carried a VLAN tag on the bridge, with that tag (Ethernet addresses as closeduel learned them, zero while unknown)"
)

// appendVLANIDB appends the description of interface 1: Ethernet,
// VLANInterfaceName, nanosecond timestamps.
func appendVLANIDB(b []byte, snapLen int) []byte {
	start := len(b)
	b = ne.AppendUint32(b, blockIDB)
	b = ne.AppendUint32(b, 0) // total length, set below
	b = ne.AppendUint16(b, uint16(layers.LinkTypeEthernet))
	b = ne.AppendUint16(b, 0)
	b = ne.AppendUint32(b, uint32(snapLen))
	for _, o := range []struct {
		code uint16
		val  string
	}{{optIfName, VLANInterfaceName}, {optIfDesc, vlanDescription}, {optIfTsresol, "\x09"}} {
		b = ne.AppendUint16(b, o.code)
		b = ne.AppendUint16(b, uint16(len(o.val)))
		b = append(b, o.val...)
		b = pad4(b, len(o.val))
	}
	return endBlock(b, start)
}

// pcapng block and option codes (draft-ietf-opsawg-pcapng).
const (
	blockEPB        = 6
	optEndOfOpt     = 0
	optComment      = 1
	optEPBDropCount = 4
)

// appendEPB appends an enhanced packet block for interface intf (whose
// if_tsresol is 9: nanoseconds) in the section's byte order.
func appendEPB(b []byte, intf uint32, t int64, data []byte, origLen int, comment []byte, drops uint64) []byte {
	start := len(b)
	b = ne.AppendUint32(b, blockEPB)
	b = ne.AppendUint32(b, 0) // total length, set below
	b = ne.AppendUint32(b, intf)
	ts := uint64(t)
	b = ne.AppendUint32(b, uint32(ts>>32))
	b = ne.AppendUint32(b, uint32(ts))
	b = ne.AppendUint32(b, uint32(len(data)))
	b = ne.AppendUint32(b, uint32(origLen))
	b = append(b, data...)
	b = pad4(b, len(data))
	if len(comment) > 0 {
		b = ne.AppendUint16(b, optComment)
		b = ne.AppendUint16(b, uint16(len(comment)))
		b = append(b, comment...)
		b = pad4(b, len(comment))
	}
	if drops > 0 {
		b = ne.AppendUint16(b, optEPBDropCount)
		b = ne.AppendUint16(b, 8)
		b = ne.AppendUint64(b, drops)
	}
	return endBlock(b, start)
}

// endBlock ends the options and the block that starts at b[start]: the
// end-of-options option, then the block's total length at both ends.
func endBlock(b []byte, start int) []byte {
	b = ne.AppendUint16(b, optEndOfOpt)
	b = ne.AppendUint16(b, 0)
	total := uint32(len(b) - start + 4)
	b = ne.AppendUint32(b, total)
	ne.PutUint32(b[start+4:], total)
	return b
}

// pad4 pads b with zeros after n bytes of content up to a multiple of 4.
func pad4(b []byte, n int) []byte {
	for ; n%4 != 0; n++ {
		b = append(b, 0)
	}
	return b
}

// finish writes an interface statistics block: received is every event
// offered, dropped the events lost for want of a slot.
func (p *pcapOut) finish(end time.Time, received, dropped uint64) error {
	// The NgWriter's own buffer is empty since newPcapOut flushed it, so
	// its block lands after the packet blocks in p.out.
	return p.ng.WriteInterfaceStats(0, pcapgo.NgInterfaceStatistics{
		LastUpdate:      end,
		StartTime:       p.start,
		EndTime:         end,
		PacketsReceived: received,
		PacketsDropped:  dropped,
	})
}

func (p *pcapOut) flush() error {
	err := p.ng.Flush()
	if err == nil {
		err = p.out.Flush()
	}
	if p.vlanIntf == intfBuffered {
		p.vlanIntf = intfFlushed
		if err != nil {
			p.vlanIntf = intfNone // cut back with the batch
		}
	}
	return err
}

// appendComment appends the frame comment of r, e.g.
// "closeduel verdict=accept action=pass rule=- conn=12 dir=client>device held=0s".
func appendComment(b []byte, r *record) []byte {
	b = append(b, "closeduel "...)
	switch r.kind {
	case nfq.EventVerdict:
		b = append(b, "verdict="...)
		b = append(b, r.verdict.String()...)
		b = append(b, " action="...)
		if r.action == "" {
			b = append(b, "pass"...)
		} else {
			b = appendWord(b, r.action)
		}
	case nfq.EventDuplicate:
		b = append(b, "duplicate action=duplicate"...)
	case nfq.EventInjected:
		b = append(b, "injected action=inject"...)
	default:
		b = append(b, r.kind.String()...)
	}
	b = append(b, " rule="...)
	b = appendWord(b, r.rule)
	b = append(b, " conn="...)
	b = strconv.AppendUint(b, r.conn, 10)
	b = append(b, " dir="...)
	b = appendWord(b, r.dir)
	if r.kind == nfq.EventVerdict {
		b = append(b, " held="...)
		b = append(b, r.held().Round(time.Microsecond).String()...)
		if r.rewrote != "" {
			b = append(b, " rewrote="...)
			b = appendWord(b, r.rewrote)
		}
	}
	return b
}

// appendWord appends s as one word of a comment: "-" when empty, every
// space or control character replaced by '_' so words stay split on spaces
// and the comment stays on one line, and invalid UTF-8 replaced by U+FFFD
// (pcapng comments are UTF-8).
func appendWord(b []byte, s string) []byte {
	if s == "" {
		return append(b, '-')
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == 0x7f {
				c = '_'
			}
			b = append(b, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = utf8.AppendRune(b, utf8.RuneError)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return b
}
