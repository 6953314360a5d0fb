package analysis

import "github.com/closeduel/closeduel/segment"

// EventKind says whether an Event is a segment on the wire or only an
// annotation about one.
type EventKind uint8

// Event kinds.
const (
	// EventPacket is a TCP segment that was on the wire (or, when Note
	// says it was dropped, that reached closeduel and went no further).
	EventPacket EventKind = iota
	// EventVerdict is a verdict closeduel logged about a segment whose
	// packet another input (a capture) already provides.
	EventVerdict
)

// String names the kind.
func (k EventKind) String() string {
	switch k {
	case EventPacket:
		return "packet"
	case EventVerdict:
		return "verdict"
	}
	return "kind(" + itoa(int(k)) + ")"
}

// NoteKind says what closeduel did with a segment, as its verdict log or
// pcapng comment tells.
type NoteKind uint8

// Note kinds.
const (
	NoteNone      NoteKind = iota // no closeduel annotation (a plain capture)
	NoteVerdict                   // a queued packet got its verdict
	NoteDuplicate                 // closeduel sent a copy of a queued packet
	NoteInjected                  // closeduel sent a crafted segment
)

// String names the kind as the verdict log does.
func (k NoteKind) String() string {
	switch k {
	case NoteNone:
		return "none"
	case NoteVerdict:
		return "verdict"
	case NoteDuplicate:
		return "duplicate"
	case NoteInjected:
		return "injected"
	}
	return "note(" + itoa(int(k)) + ")"
}

// Note is closeduel's annotation of one segment.
type Note struct {
	Kind NoteKind
	// Drop reports a verdict=drop: the segment never reached its
	// receiver.
	Drop bool
	// Action is the rule-language action word ("pass", "drop", ...), Rule
	// the rule's name; both empty when unknown or none.
	Action, Rule string
}

// Event is one segment (or one verdict about a segment) in time order.
type Event struct {
	Kind EventKind
	// Time is when the segment was seen on the wire (for closeduel's
	// logs: when it left closeduel), in ns since the Unix epoch.
	Time int64
	Seg  segment.Segment
	Note Note
	// Input is the index of the input the event came from.
	Input int
	// Counted says the Note counts in the verdict totals: false for a
	// pcapng comment when a log given alongside carries the same verdicts.
	Counted bool
}

// itoa formats small non-negative numbers without strconv's allocation
// for the common cases.
func itoa(n int) string {
	if n < 0 {
		return "-" + itoa(-n)
	}
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return string(b[i:])
}
