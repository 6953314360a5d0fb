package tcpstate

import "strings"

// State is an endpoint's TCP state as RFC 9293 section 3.3.2 names them.
// The zero State is Closed.
type State uint8

// The RFC 9293 states.
const (
	Closed State = iota
	Listen
	SynSent
	SynReceived
	Established
	FinWait1
	FinWait2
	CloseWait
	Closing
	LastAck
	TimeWait
	numStates
)

var stateNames = [numStates]string{
	"closed", "listen", "syn-sent", "syn-received", "established",
	"fin-wait-1", "fin-wait-2", "close-wait", "closing", "last-ack", "time-wait",
}

// String returns the state as the rule language spells it, e.g.
// "time-wait".
func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return "state(" + itoa(uint64(s)) + ")"
}

// Synchronized reports whether the state is one of those RFC 9293 calls
// synchronized: ESTABLISHED through TIME-WAIT.
func (s State) Synchronized() bool { return s >= Established && s < numStates }

// StateNames returns every state's name in RFC order.
func StateNames() []string { return append([]string(nil), stateNames[:]...) }

// ParseState parses a state name. It accepts the rule language's spelling
// ("time-wait") and the RFC's ("TIME_WAIT", "TIME-WAIT"), case-insensitive;
// "syn-rcvd" is taken for syn-received.
func ParseState(s string) (State, bool) {
	s = strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "_", "-")
	if s == "syn-rcvd" {
		return SynReceived, true
	}
	for i, n := range stateNames {
		if s == n {
			return State(i), true
		}
	}
	return 0, false
}

// Stack selects the closing behaviour the tracker assumes for an endpoint
// where TCP implementations differ.
type Stack uint8

// Stacks.
const (
	// RFC9293 follows RFC 9293 with RFC 5961: an RST whose sequence number
	// is exactly the next one expected closes any synchronized state,
	// TIME-WAIT included; TIME-WAIT lasts 2·MSL.
	RFC9293 Stack = iota
	// Linux: like RFC9293 (net.ipv4.tcp_rfc1337=0, so an exact RST ends
	// TIME-WAIT), TIME-WAIT lasts 60 s (TCP_TIMEWAIT_LEN), an orphaned
	// FIN-WAIT-2 60 s (tcp_fin_timeout).
	Linux
	// LwIP: lwIP 2.1's tcp_in.c: TIME-WAIT ignores every RST (RFC 1337) and
	// lasts 2·MSL; FIN-WAIT-2 of a closed pcb ends after 20 s
	// (TCP_FIN_WAIT_TIMEOUT).
	LwIP
	// NumStacks is the number of stacks (for arrays indexed by Stack).
	NumStacks
)

var stackNames = [NumStacks]string{"rfc9293", "linux", "lwip"}

// String returns "rfc9293", "linux" or "lwip".
func (s Stack) String() string {
	if s < NumStacks {
		return stackNames[s]
	}
	return "stack(" + itoa(uint64(s)) + ")"
}

// StackNames returns every stack's name.
func StackNames() []string { return append([]string(nil), stackNames[:]...) }

// ParseStack parses a stack name, case-insensitive.
func ParseStack(s string) (Stack, bool) {
	for i, n := range stackNames {
		if strings.EqualFold(strings.TrimSpace(s), n) {
			return Stack(i), true
		}
	}
	return 0, false
}

// Event is a set of things the tracker noticed about one segment.
type Event uint16

// Events.
const (
	// NewIncarnation: the segment started a connection incarnation (a SYN, or the first
	// segment of a connection picked up in the middle).
	NewIncarnation Event = 1 << iota
	// Retransmission: the segment carries sequence space (data, SYN or FIN)
	// its sender had sent before.
	Retransmission
	// KeepAlive: an empty or one-octet segment at the sender's next
	// sequence number minus one.
	KeepAlive
	// AcksSYN: the segment's acknowledgment number is exactly the
	// receiver's initial sequence number plus one.
	AcksSYN
	// AcksFIN: the segment acknowledges the FIN its receiver sent.
	AcksFIN
	// ReusesTuple: a SYN (and its retransmissions) of an incarnation
	// that reuses its 4-tuple while the other endpoint still holds the
	// previous one (Conn.Reused).
	ReusesTuple
	// AfterRST: an RST was seen earlier in the same incarnation.
	AfterRST
	// Midstream: the connection was picked up after its handshake.
	Midstream
	// StaleAck: an ACK without SYN that answers the opener's SYN, before
	// any SYN-ACK, acknowledging something the opener never sent in this
	// incarnation: its sender still holds the previous one.
	StaleAck
	numEvents = 9
)

var eventNames = [numEvents]string{
	"new", "retransmission", "keep-alive", "acks-syn", "acks-fin", "reuses-tuple", "after-rst", "midstream", "stale-ack",
}

// Has reports whether every event of want is in e.
func (e Event) Has(want Event) bool { return e&want == want }

// String lists the events joined by "+", "none" when empty.
func (e Event) String() string {
	if e == 0 {
		return "none"
	}
	var b strings.Builder
	for i, n := range eventNames {
		if e&(1<<i) == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('+')
		}
		b.WriteString(n)
	}
	return b.String()
}

func itoa(v uint64) string {
	if v == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[i:])
}
