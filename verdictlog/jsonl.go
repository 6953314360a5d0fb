package verdictlog

import (
	"strconv"
	"unicode/utf8"

	"github.com/closeduel/closeduel/nfq"
	"github.com/closeduel/closeduel/vlanmark"
)

// SchemaVersion is the value of "v" on every JSON Lines record; it changes
// when a field changes meaning or disappears (see SCHEMA.md).
const SchemaVersion = 1

// The JSON encoders below append to a reused buffer with strconv, so the
// writer goroutine builds a line without allocating.

// appendHead starts a record: {"v":1,"kind":"<kind>","t":<t>
func appendHead(b []byte, kind string, t int64) []byte {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, SchemaVersion, 10)
	b = append(b, `,"kind":"`...)
	b = append(b, kind...) // kinds are plain ASCII constants
	b = append(b, `","t":`...)
	return strconv.AppendInt(b, t, 10)
}

// appendEnd closes a record and ends its line.
func appendEnd(b []byte) []byte { return append(b, "}\n"...) }

func appendKey(b []byte, key string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...) // keys are plain ASCII constants
	return append(b, '"', ':')
}

func appendStringField(b []byte, key, val string) []byte {
	return appendString(appendKey(b, key), val)
}

func appendUintField(b []byte, key string, v uint64) []byte {
	return strconv.AppendUint(appendKey(b, key), v, 10)
}

func appendIntField(b []byte, key string, v int64) []byte {
	return strconv.AppendInt(appendKey(b, key), v, 10)
}

func appendBoolField(b []byte, key string, v bool) []byte {
	return strconv.AppendBool(appendKey(b, key), v)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Like encoding/json it escapes
// quotes, backslashes and control characters and turns invalid UTF-8 into
// U+FFFD; unlike it, it leaves <, > and & alone.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendStart encodes the record that opens every log.
func appendStart(b []byte, t int64, version string) []byte {
	b = appendHead(b, "start", t)
	b = appendStringField(b, "version", version)
	return appendEnd(b)
}

// appendEvent encodes a verdict, duplicate or injected record.
func appendEvent(b []byte, r *record) []byte {
	b = appendHead(b, r.kind.String(), r.arrived)
	b = appendIntField(b, "left", r.left)
	b = appendUintField(b, "id", uint64(r.id))
	if r.dir != "" {
		b = appendStringField(b, "dir", r.dir)
	}
	if r.vlan.Tagged() {
		b = appendUintField(b, "vlan", uint64(r.vlan.ID))
		if r.vlan.TPID == vlanmark.TPID8021AD {
			b = appendStringField(b, "vlan_type", "802.1ad")
		}
	}
	if r.tcp {
		s := &r.seg
		b = appendKey(b, "src")
		b = append(b, '"')
		b = s.Src.Addr().AppendTo(b)
		b = append(b, '"')
		b = appendKey(b, "dst")
		b = append(b, '"')
		b = s.Dst.Addr().AppendTo(b)
		b = append(b, '"')
		b = appendUintField(b, "sport", uint64(s.Src.Port()))
		b = appendUintField(b, "dport", uint64(s.Dst.Port()))
		b = appendKey(b, "flags")
		b = append(b, '"')
		b = s.Flags.AppendTo(b)
		b = append(b, '"')
		b = appendUintField(b, "seq", uint64(s.Seq))
		b = appendUintField(b, "ack", uint64(s.Ack))
		b = appendUintField(b, "win", uint64(s.Window))
		b = appendIntField(b, "len", int64(s.PayloadLen))
	} else {
		if r.src.IsValid() {
			b = appendKey(b, "src")
			b = append(b, '"')
			b = r.src.AppendTo(b)
			b = append(b, '"')
			b = appendKey(b, "dst")
			b = append(b, '"')
			b = r.dst.AppendTo(b)
			b = append(b, '"')
		}
		b = appendBoolField(b, "tcp", false)
	}
	if r.conn != 0 {
		b = appendUintField(b, "conn", r.conn)
	}
	if r.rule != "" {
		b = appendStringField(b, "rule", r.rule)
	}
	action := r.action
	if action == "" {
		action = "pass"
	}
	b = appendStringField(b, "action", action)
	if r.kind == nfq.EventVerdict {
		b = appendStringField(b, "verdict", r.verdict.String())
		b = appendIntField(b, "delay", r.left-r.arrived)
	}
	if r.rewrote != "" {
		b = appendStringField(b, "rewrote", r.rewrote)
	}
	return appendEnd(b)
}

// appendLost encodes the marker of a gap: n events were lost at this point
// of the log, total so far.
func appendLost(b []byte, t int64, n, total uint64) []byte {
	b = appendHead(b, "lost", t)
	b = appendUintField(b, "n", n)
	b = appendUintField(b, "lost", total)
	return appendEnd(b)
}

// appendRules encodes a rules record.
func appendRules(b []byte, c *control) []byte {
	b = appendHead(b, "rules", c.t)
	b = appendStringField(b, "file", c.file)
	b = appendStringField(b, "sha256", c.sha256)
	b = appendStringField(b, "experiment", c.experiment)
	return appendEnd(b)
}

// appendToggle encodes a toggle record.
func appendToggle(b []byte, c *control) []byte {
	b = appendHead(b, "toggle", c.t)
	b = appendStringField(b, "rule", c.rule)
	b = appendBoolField(b, "enabled", c.enabled)
	return appendEnd(b)
}

// appendMitigation encodes a mitigation record.
func appendMitigation(b []byte, c *control) []byte {
	b = appendHead(b, "mitigation", c.t)
	b = appendStringField(b, "name", c.rule)
	b = appendBoolField(b, "on", c.enabled)
	return appendEnd(b)
}

// appendSummary encodes the closing record: the caller's counters under
// their sorted names (keys holds them sorted), then the events lost for
// want of a slot and those lost to failed writes.
func appendSummary(b []byte, t int64, keys []string, fields map[string]uint64, lost, failed uint64) []byte {
	b = appendHead(b, "summary", t)
	for _, k := range keys {
		b = append(b, ',')
		b = appendString(b, k)
		b = append(b, ':')
		b = strconv.AppendUint(b, fields[k], 10)
	}
	b = appendUintField(b, "lost", lost)
	b = appendUintField(b, "failed", failed)
	return appendEnd(b)
}
