package mitigate

import (
	"strconv"
	"strings"
	"sync/atomic"
)

// Name is one mitigation.
type Name uint8

// The mitigations.
const (
	// TimewaitGuard moves a client SYN on a 4-tuple that the device still
	// holds in TIME-WAIT to a free source port, for the life of that
	// connection.
	TimewaitGuard Name = iota
	// FinalAckRepair acknowledges, in the client's name, a FIN that the
	// device retransmits after the client acknowledged it (or that the
	// client answers with an RST because its socket is gone), and keeps
	// that RST from the device.
	FinalAckRepair
	// DuelQuench stops forwarding a tuple's ping-pong after K turns of a
	// duel, for a bounded time.
	DuelQuench
	// FinReset resets, in the client's name, a device that retransmits a
	// FIN the client acknowledged (a device that does not take the ACK
	// in): an RST at exactly the device's next expected sequence number,
	// which lwIP accepts in FIN-WAIT-1, CLOSING and LAST-ACK.
	FinReset
	numNames
)

// Info documents a mitigation: the mechanism it targets and the lab
// experiment that shows it.
type Info struct {
	Name Name
	// Mechanism says, in a sentence, what goes wrong and what the
	// mitigation does about it.
	Mechanism string
	// Experiment is the shipped experiment (rules/library) whose duel
	// the mitigation ends.
	Experiment string
	// LabArgs are the `closeduel lab` flags of that experiment's workload.
	LabArgs []string
}

var infos = [numNames]Info{
	{
		Name: TimewaitGuard,
		Mechanism: "a client SYN on a 4-tuple the device still holds in TIME-WAIT (it closed first, less than 2·MSL ago) " +
			"draws lwIP's ACK of the old connection, Linux answers RST, lwIP ignores it (RFC 1337) and the SYN is " +
			"retried until TIME-WAIT ends; the guard moves that connection to a free source port, both directions " +
			"rewritten, so the device sees a fresh 4-tuple and the client connects at once",
		Experiment: "reused-tuple",
		LabArgs:    []string{"--ports", "40000-40001", "--client-close", "eof", "--concurrency", "4", "--timeout", "0", "--schedule", "3x1s", "--quiet", "20s"},
	},
	{
		Name: FinalAckRepair,
		Mechanism: "the client's ACK of the device's FIN is lost: the device retransmits its FIN for minutes (3, 6, 12 ... s), " +
			"and once the client's socket is gone it draws an RST; the repair answers the retransmitted FIN (or the RST) " +
			"with the right ACK in the client's name, so the device reaches TIME-WAIT or CLOSED at once",
		// Every ACK of the device's FIN is lost: the FIN and Linux's
		// TIME-WAIT re-ACK ping-pong for minutes, until an RST.
		Experiment: "lost-fin-acks",
		LabArgs:    nil, // its lab: section
	},
	{
		Name: DuelQuench,
		Mechanism: "any ping-pong on a closed tuple (a duel, as the analysis defines it) that no targeted fix ends: " +
			"after K turns the tuple's out-of-connection segments are dropped for a bounded time, and logged; " +
			"the last resort",
		Experiment: "reused-tuple",
		LabArgs:    []string{"--ports", "40000-40001", "--client-close", "eof", "--concurrency", "4", "--timeout", "0", "--schedule", "3x1s", "--quiet", "20s"},
	},
	{
		Name: FinReset,
		Mechanism: "a device that does not take in the ACK of its own FIN (busy at close) retransmits it for minutes, " +
			"re-acknowledged by Linux's TIME-WAIT each time, until an RST; final-ack-repair's ACK is not taken in either. " +
			"The reset sends the device, in the client's name, an RST at exactly the sequence number it expects next " +
			"(the retransmitted FIN's acknowledgment number), which lwIP accepts in FIN-WAIT-1, CLOSING and LAST-ACK, " +
			"and drops the FIN: the pcb is freed at the first retransmission",
		Experiment: "busy-close",
		LabArgs:    nil, // its lab: section
	},
}

var names = [numNames]string{"timewait-guard", "final-ack-repair", "duel-quench", "fin-reset"}

// String returns the name as rule files and `closeduel ctl` spell it.
func (n Name) String() string {
	if n < numNames {
		return names[n]
	}
	return "mitigation(" + strconv.Itoa(int(n)) + ")"
}

// Info returns the mitigation's documentation.
func (n Name) Info() Info {
	if n < numNames {
		return infos[n]
	}
	return Info{Name: n}
}

// Names returns every mitigation's name.
func Names() []string { return append([]string(nil), names[:]...) }

// All returns every mitigation.
func All() []Name {
	out := make([]Name, numNames)
	for i := range out {
		out[i] = Name(i)
	}
	return out
}

// ParseName parses a mitigation's name, case-insensitive.
func ParseName(s string) (Name, bool) {
	for i, n := range names {
		if strings.EqualFold(strings.TrimSpace(s), n) {
			return Name(i), true
		}
	}
	return 0, false
}

// Set is a set of mitigations.
type Set uint32

// Has reports whether n is in the set.
func (s Set) Has(n Name) bool { return s&(1<<n) != 0 }

// With returns the set with n on or off.
func (s Set) With(n Name, on bool) Set {
	if on {
		return s | 1<<n
	}
	return s &^ (1 << n)
}

// String lists the set's names joined by ", ", "none" when empty.
func (s Set) String() string {
	var parts []string
	for _, n := range All() {
		if s.Has(n) {
			parts = append(parts, n.String())
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// switches holds the set in force; safe from any goroutine.
type switches struct{ v atomic.Uint32 }

func (w *switches) load() Set { return Set(w.v.Load()) }

// set switches n and reports whether that changed anything.
func (w *switches) set(n Name, on bool) bool {
	for {
		old := w.v.Load()
		nv := uint32(Set(old).With(n, on))
		if old == nv {
			return false
		}
		if w.v.CompareAndSwap(old, nv) {
			return true
		}
	}
}
