package rules

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/closeduel/closeduel/segment"
	"github.com/closeduel/closeduel/tcpstate"
)

// Describe says in plain words what the experiment watches and what each
// rule does: a scope line, then one line per rule, "NAME: sentence".
func (f *File) Describe() []string {
	out := []string{f.describeScope()}
	if f.Mitigations != 0 {
		out = append(out, "mitigations on: "+f.Mitigations.String())
	}
	if len(f.Rules) == 0 {
		out = append(out, "no rules: every segment passes untouched and is only observed")
	}
	for i := range f.Rules {
		r := &f.Rules[i]
		line := r.Name + ": " + r.describe(f)
		if !r.Enabled {
			line += " (disabled until enabled at run time)"
		}
		out = append(out, line)
	}
	return append(out, f.describeLab()...)
}

func (f *File) describeScope() string {
	var b strings.Builder
	b.WriteString("watches TCP")
	if f.HasRoles() {
		fmt.Fprintf(&b, " between client %s and device %s", prefixList(f.Hosts[Client], "or"), prefixList(f.Hosts[Device], "or"))
	}
	if len(f.Ports) > 0 {
		b.WriteString(" on " + portList(f.Ports))
	}
	if f.HasRoles() && (f.Stacks[Client] != tcpstate.RFC9293 || f.Stacks[Device] != tcpstate.RFC9293) {
		fmt.Fprintf(&b, " (client runs %s, device %s)", f.Stacks[Client], f.Stacks[Device])
	}
	fmt.Fprintf(&b, "; random choices are seeded with %d", f.Seed)
	return b.String()
}

func prefixList(ps []netip.Prefix, conj string) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		if p.IsSingleIP() {
			s[i] = p.Addr().String()
		} else {
			s[i] = p.String()
		}
	}
	return joinWords(s, conj)
}

func portList(ps []uint16) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(int(p))
	}
	if len(s) == 1 {
		return "port " + s[0]
	}
	return "ports " + joinWords(s, "or")
}

// joinWords joins "a", "b", "c" as "a, b or c".
func joinWords(s []string, conj string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " " + conj + " " + s[len(s)-1]
}

func ordinal(n uint32) string {
	suffix := "th"
	if n%100 < 11 || n%100 > 13 {
		switch n % 10 {
		case 1:
			suffix = "st"
		case 2:
			suffix = "nd"
		case 3:
			suffix = "rd"
		}
	}
	return strconv.FormatUint(uint64(n), 10) + suffix
}

func flagWords(f segment.Flags, conj string) string {
	var s []string
	for i, n := range flagNames {
		if f&(1<<i) != 0 {
			s = append(s, n)
		}
	}
	return joinWords(s, conj)
}

func stateWords(set uint16) string {
	var s []string
	for st := tcpstate.Closed; st <= tcpstate.TimeWait; st++ {
		if set&(1<<st) != 0 {
			s = append(s, strings.ToUpper(st.String()))
		}
	}
	return joinWords(s, "or")
}

func (h *hostSpec) words() string {
	var s []string
	for r, on := range h.roles {
		if on {
			s = append(s, Role(r).String())
		}
	}
	for _, p := range h.prefixes {
		if p.IsSingleIP() {
			s = append(s, p.Addr().String())
		} else {
			s = append(s, p.String())
		}
	}
	return joinWords(s, "or")
}

// object names the segments a match selects, e.g. "the 1st ACK from
// client that acknowledges device's FIN".
func (m *match) object() string {
	var b strings.Builder
	switch {
	case m.nth > 0 && m.every > 0:
		fmt.Fprintf(&b, "the %s and every %s after it", ordinal(m.nth), ordinal(m.every))
	case m.nth > 0:
		b.WriteString("the " + ordinal(m.nth))
	case m.every == 1:
		b.WriteString("every")
	case m.every > 0:
		b.WriteString("every " + ordinal(m.every))
	default:
		b.WriteString("each")
	}
	switch {
	case m.hasExact:
		b.WriteString(" " + m.exact.String())
	default:
		b.WriteString(" segment")
		var with []string
		if m.all != 0 {
			with = append(with, flagWords(m.all, "and"))
		}
		if m.anyOf != 0 {
			with = append(with, flagWords(m.anyOf, "or"))
		}
		if len(with) > 0 {
			b.WriteString(" with " + strings.Join(with, " and with "))
		}
		if m.none != 0 {
			b.WriteString(" without " + flagWords(m.none, "or"))
		}
	}
	if m.from.set {
		b.WriteString(" from " + m.from.words())
	}
	if m.to.set {
		b.WriteString(" to " + m.to.words())
	}
	if len(m.ports) > 0 {
		b.WriteString(" on " + portList(m.ports))
	}
	if m.hasPayload {
		switch {
		case m.payMin == 0 && m.payMax == 0:
			b.WriteString(" carrying no payload")
		case m.payMin == m.payMax:
			fmt.Fprintf(&b, " carrying %d payload octets", m.payMin)
		case m.payMax == 65535:
			fmt.Fprintf(&b, " carrying at least %d payload octets", m.payMin)
		case m.payMin == 0:
			fmt.Fprintf(&b, " carrying at most %d payload octets", m.payMax)
		default:
			fmt.Fprintf(&b, " carrying %d to %d payload octets", m.payMin, m.payMax)
		}
	}
	var that []string
	if m.acks != 0 {
		var a []string
		if m.acks&ackSYN != 0 {
			a = append(a, "its receiver's SYN")
		}
		if m.acks&ackFIN != 0 {
			a = append(a, "its receiver's FIN")
		}
		if m.acks&ackClientFIN != 0 {
			a = append(a, "client's FIN")
		}
		if m.acks&ackDeviceFIN != 0 {
			a = append(a, "device's FIN")
		}
		that = append(that, "acknowledges "+joinWords(a, "or"))
	}
	tris := []struct {
		t        tri
		yes, not string
	}{
		{m.retrans, "is a retransmission", "is not a retransmission"},
		{m.keepAlive, "is a keep-alive", "is not a keep-alive"},
		{m.reuses, "reuses a 4-tuple closed less than 2·MSL ago", "does not reuse a recently closed 4-tuple"},
		{m.afterRST, "follows an RST in its connection", "comes before any RST in its connection"},
	}
	for _, x := range tris {
		switch x.t {
		case triTrue:
			that = append(that, x.yes)
		case triFalse:
			that = append(that, x.not)
		}
	}
	if len(that) > 0 {
		b.WriteString(" that " + joinWords(that, "and"))
	}
	var while []string
	for r, set := range m.states {
		if set != 0 {
			while = append(while, Role(r).String()+" is in "+stateWords(set))
		}
	}
	for r, on := range m.hasFins {
		if !on {
			continue
		}
		who, lo, hi := Role(r).String(), m.finsMin[r], m.finsMax[r]
		switch {
		case lo == 0 && hi == 0:
			while = append(while, who+" has sent no FIN")
		case lo == hi:
			while = append(while, who+" has sent its FIN "+timesWord(lo))
		case hi == 65535:
			while = append(while, who+" has sent its FIN at least "+timesWord(lo))
		case lo == 0:
			while = append(while, who+" has sent its FIN at most "+timesWord(hi))
		default:
			while = append(while, fmt.Sprintf("%s has sent its FIN %d to %d times", who, lo, hi))
		}
	}
	if len(while) > 0 {
		b.WriteString(", while " + joinWords(while, "and"))
	}
	if m.hasFirstCloser {
		b.WriteString(", in connections " + m.firstCloser.String() + " closed first")
	}
	return b.String()
}

// tail says when, how often and how likely a match fires.
func (m *match) tail(f *File) string {
	var parts []string
	if m.nth > 0 || m.every > 0 {
		parts = append(parts, "in each connection")
	}
	switch {
	case m.hasAfter && m.hasUntil:
		parts = append(parts, fmt.Sprintf("between %v and %v after the first segment", m.after, m.until))
	case m.hasAfter:
		parts = append(parts, fmt.Sprintf("from %v after the first segment on", m.after))
	case m.hasUntil:
		parts = append(parts, fmt.Sprintf("during the first %v", m.until))
	}
	if m.hasProb {
		parts = append(parts, fmt.Sprintf("with probability %s (seed %d)", strconv.FormatFloat(m.prob*100, 'f', -1, 64)+"%", f.Seed))
	}
	if m.limit > 0 {
		parts = append(parts, "at most "+times(m.limit)+" in all")
	}
	if m.limitConn > 0 {
		parts = append(parts, "at most "+times(m.limitConn)+" per connection")
	}
	if len(parts) == 0 {
		return ""
	}
	return ", " + strings.Join(parts, ", ")
}

func timesWord(n int) string { return times(uint64(n)) }

func times(n uint64) string {
	switch n {
	case 1:
		return "once"
	case 2:
		return "twice"
	}
	return strconv.FormatUint(n, 10) + " times"
}

func (r *Rule) describe(f *File) string {
	obj := r.when.object()
	tail := r.when.tail(f)
	a := &r.do
	switch a.kind {
	case actPass:
		return "lets " + obj + " pass untouched" + tail + "; later rules do not see it"
	case actDrop:
		return "drops " + obj + tail
	case actDelay:
		return "delays " + obj + " by " + a.delayWords() + tail
	case actDuplicate:
		copies := "a copy"
		if a.count > 1 {
			copies = strconv.Itoa(a.count) + " copies"
		}
		gap := ""
		if a.gap > 0 {
			gap = ", " + a.gap.String() + " apart"
		}
		return "passes " + obj + " and sends " + copies + " of it after it" + gap + tail
	case actRewrite:
		return "rewrites " + obj + tail + ": " + a.rw.words()
	case actInject:
		return a.inj.words(obj + tail)
	case actHold:
		next := "the next segment of its connection"
		if a.release != nil {
			next = "the next " + strings.TrimPrefix(a.release.object(), "each ") + " in its connection"
		}
		return "holds " + obj + tail + " until " + next + " passes (at most " + a.holdMax.String() + "), then releases it behind that one"
	case actLogOnly:
		return "passes and marks in the verdict log " + obj + tail
	}
	return a.kind.String() + " " + obj + tail
}

func (a *action) delayWords() string {
	switch {
	case a.dist == distNormal:
		return fmt.Sprintf("a normally distributed time around %v (standard deviation %v, never below 0)", a.delay, a.jitter)
	case a.dist == distExponential:
		return fmt.Sprintf("an exponentially distributed time averaging %v (at most %v)", a.delay, capExp(a.delay))
	case a.jitter > 0:
		return fmt.Sprintf("%v ± %v (uniformly distributed)", a.delay, a.jitter)
	}
	return a.delay.String()
}

// capExp bounds exponential delays.
func capExp(mean time.Duration) time.Duration { return min(10*mean, maxDelay) }

func (rw *rewrite) words() string {
	var parts []string
	if rw.replace {
		parts = append(parts, "flags become "+rw.flags.String())
	}
	if rw.set != 0 {
		parts = append(parts, "sets "+flagWords(rw.set, "and"))
	}
	if rw.clear != 0 {
		parts = append(parts, "clears "+flagWords(rw.clear, "and"))
	}
	for _, x := range []struct {
		name string
		s    seqSpec
	}{{"sequence number", rw.seq}, {"acknowledgment number", rw.ack}} {
		switch x.s.mode {
		case seqAbs:
			parts = append(parts, fmt.Sprintf("%s becomes %d", x.name, x.s.v))
		case seqRel:
			parts = append(parts, fmt.Sprintf("%s moves by %+d", x.name, x.s.v))
		}
	}
	if rw.window >= 0 {
		parts = append(parts, fmt.Sprintf("window becomes %d", rw.window))
	}
	if rw.strip {
		parts = append(parts, "TCP options become NOPs")
	}
	if rw.repair {
		parts = append(parts, "its checksums are computed anew (a corrupt segment becomes a valid one)")
	}
	return joinWords(parts, "and")
}

func (in *inject) words(obj string) string {
	toward := towardNames[in.toward]
	if in.toward == towardSender {
		toward = "its sender"
	} else if in.toward == towardReceiver {
		toward = "its receiver"
	}
	what := in.flags.String()
	if in.count > 1 {
		what = strconv.Itoa(in.count) + " × " + what
	}
	var seq string
	switch in.seq.mode {
	case seqKeep:
		seq = "the sequence number it expects next"
	case seqInWindow:
		seq = "a sequence number inside its window but not the next (an RST there draws a challenge ACK)"
	case seqAbs:
		seq = fmt.Sprintf("sequence number %d", in.seq.v)
	case seqRel:
		seq = fmt.Sprintf("the sequence number it expects next %+d", in.seq.v)
	}
	when := "right after " + obj + " passes"
	if in.before {
		when = "right before " + obj + " passes"
	}
	if in.drop {
		when = "in place of " + obj + ", which it drops"
	}
	return fmt.Sprintf("injects %s toward %s with %s, %s", what, toward, seq, when)
}
