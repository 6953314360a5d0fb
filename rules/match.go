package rules

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/closeduel/closeduel/segment"
	"github.com/closeduel/closeduel/tcpstate"
	"gopkg.in/yaml.v3"
)

// whenKeys are the conditions of when:. releaseKeys are those a
// hold-until-next release condition may use (no counting, no chance).
var (
	whenKeys = []string{
		"from", "to", "ports", "flags", "has", "any", "none", "payload",
		"client", "device", "client-fins", "device-fins", "acks", "retransmission", "keep-alive", "reuses-tuple", "after-rst", "first-closer",
		"nth", "every", "after", "until", "probability", "limit", "limit-per-conn",
	}
	releaseKeys = []string{
		"from", "to", "flags", "has", "any", "none", "payload",
		"client", "device", "client-fins", "device-fins", "acks", "retransmission", "keep-alive", "reuses-tuple", "after-rst", "first-closer",
	}
	ackNames = []string{"syn", "fin", "client-fin", "device-fin"}
)

// tri is an unset, required-true or required-false condition.
type tri uint8

const (
	triAny tri = iota
	triTrue
	triFalse
)

func (t tri) ok(v bool) bool { return t == triAny || (t == triTrue) == v }

// hostSpec matches an endpoint by role or by address.
type hostSpec struct {
	set      bool
	roles    [2]bool
	prefixes []netip.Prefix
}

// ack conditions, any of which matches.
const (
	ackSYN uint8 = 1 << iota
	ackFIN
	ackClientFIN
	ackDeviceFIN
)

// match is a compiled when: (every condition set must hold).
type match struct {
	from, to hostSpec
	ports    []uint16

	exact    segment.Flags
	hasExact bool
	all      segment.Flags
	anyOf    segment.Flags
	none     segment.Flags

	hasPayload     bool
	payMin, payMax int

	states [2]uint16 // by Role: bit per tcpstate.State; 0 means any

	hasFins          [2]bool // by Role
	finsMin, finsMax [2]int

	acks                                 uint8
	retrans, keepAlive, reuses, afterRST tri
	firstCloser                          Role
	hasFirstCloser                       bool

	nth, every         uint32
	after, until       time.Duration
	hasAfter, hasUntil bool
	prob               float64
	hasProb            bool
	limit, limitConn   uint64
}

// counts reports whether the rule keeps per-connection counters.
func (m *match) counts() bool { return m.nth > 0 || m.every > 0 || m.limitConn > 0 }

// view is what a match looks at for one segment.
type view struct {
	seg      *segment.Segment
	res      *tcpstate.Result
	fromRole Role // noRole when the file names none
	elapsed  time.Duration
}

// end returns the index in the connection's Ends of role r's endpoint.
func (v *view) end(r Role) int {
	if r == v.fromRole {
		return v.res.From
	}
	return 1 - v.res.From
}

func (h *hostSpec) matches(r Role, a netip.Addr) bool {
	if !h.set {
		return true
	}
	if r >= 0 && h.roles[r] {
		return true
	}
	for _, p := range h.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// static reports whether every condition that does not count or draw
// holds for the segment.
func (m *match) static(v *view) bool {
	s := v.seg
	toRole := noRole
	if v.fromRole >= 0 {
		toRole = 1 - v.fromRole
	}
	if !m.from.matches(v.fromRole, s.Src.Addr()) || !m.to.matches(toRole, s.Dst.Addr()) {
		return false
	}
	if len(m.ports) > 0 {
		ok := false
		for _, p := range m.ports {
			if p == s.Src.Port() || p == s.Dst.Port() {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	f := s.Flags
	if m.hasExact && f != m.exact {
		return false
	}
	if f&m.all != m.all || f&m.none != 0 || (m.anyOf != 0 && f&m.anyOf == 0) {
		return false
	}
	if m.hasPayload && (s.PayloadLen < m.payMin || s.PayloadLen > m.payMax) {
		return false
	}
	c := v.res.Conn
	for r, set := range m.states {
		if set != 0 && (v.fromRole < 0 || set&(1<<v.res.Before[v.end(Role(r))]) == 0) {
			return false
		}
	}
	for r := range m.hasFins {
		if m.hasFins[r] {
			if v.fromRole < 0 {
				return false
			}
			if n := int(v.res.Fins[v.end(Role(r))]); n < m.finsMin[r] || n > m.finsMax[r] {
				return false
			}
		}
	}
	ev := v.res.Events
	if m.acks != 0 {
		ok := m.acks&ackSYN != 0 && ev&tcpstate.AcksSYN != 0 ||
			m.acks&ackFIN != 0 && ev&tcpstate.AcksFIN != 0 ||
			m.acks&ackClientFIN != 0 && ev&tcpstate.AcksFIN != 0 && v.fromRole == Device ||
			m.acks&ackDeviceFIN != 0 && ev&tcpstate.AcksFIN != 0 && v.fromRole == Client
		if !ok {
			return false
		}
	}
	if !m.retrans.ok(ev&tcpstate.Retransmission != 0) || !m.keepAlive.ok(ev&tcpstate.KeepAlive != 0) ||
		!m.reuses.ok(ev&tcpstate.ReusesTuple != 0) || !m.afterRST.ok(ev&tcpstate.AfterRST != 0) {
		return false
	}
	if m.hasFirstCloser {
		if c.FirstCloser < 0 || v.fromRole < 0 || int(c.FirstCloser) != v.end(m.firstCloser) {
			return false
		}
	}
	if m.hasAfter && v.elapsed < m.after {
		return false
	}
	if m.hasUntil && v.elapsed >= m.until {
		return false
	}
	return true
}

// when parses a when: mapping (or, with release set, a hold-until-next
// release condition) into m.
func (p *parser) when(n *yaml.Node, f *File, m *match, release bool) {
	keys, what := whenKeys, "when"
	if release {
		keys, what = releaseKeys, "hold-until-next"
	}
	pairs, ok := p.mapping(n, what, keys, func(key string) string {
		switch {
		case release && slices.Contains(whenKeys, key):
			return fmt.Sprintf(" (%s cannot say when a held segment is released)", key)
		case slices.Contains(actionNames, key) || slices.Contains(rewriteKeys, key):
			return fmt.Sprintf(" (%s is an action: put it under do:)", key)
		case key == "state":
			return " (name the endpoint instead: client: time-wait or device: time-wait)"
		}
		return ""
	})
	if !ok {
		return
	}
	var acksN, flagsN *yaml.Node
	for _, e := range pairs {
		w := what + ": " + e.key
		switch e.key {
		case "from":
			m.from = p.hostSpec(e.v, w, f)
		case "to":
			m.to = p.hostSpec(e.v, w, f)
		case "ports":
			m.ports = p.ports(e.v, w)
		case "flags":
			flagsN = e.k
			m.exact, m.hasExact = p.flags(e.v, w)
		case "has":
			m.all, _ = p.flags(e.v, w)
		case "any":
			m.anyOf, _ = p.flags(e.v, w)
		case "none":
			m.none, _ = p.flags(e.v, w)
		case "payload":
			m.payMin, m.payMax, m.hasPayload = p.count(e.v, w, "a length")
		case "client", "device":
			r, _ := parseRole(e.key)
			if !f.HasRoles() {
				p.errAt(e.k, "%s: the file has no hosts: saying which address is the %s", w, e.key)
				continue
			}
			m.states[r] = p.states(e.v, w)
		case "client-fins", "device-fins":
			r, _ := parseRole(strings.TrimSuffix(e.key, "-fins"))
			if !f.HasRoles() {
				p.errAt(e.k, "%s: the file has no hosts: saying which address is the %s", w, r)
				continue
			}
			m.finsMin[r], m.finsMax[r], m.hasFins[r] = p.count(e.v, w, "a count")
		case "acks":
			acksN = e.k
			m.acks = p.acks(e.v, w, f)
		case "retransmission":
			m.retrans = p.tri(e.v, w)
		case "keep-alive":
			m.keepAlive = p.tri(e.v, w)
		case "reuses-tuple":
			m.reuses = p.tri(e.v, w)
		case "after-rst":
			m.afterRST = p.tri(e.v, w)
		case "first-closer":
			m.firstCloser, m.hasFirstCloser = p.role(e.v, w, f)
		case "nth":
			if v, ok := p.integer(e.v, w, 1, 1<<31); ok {
				m.nth = uint32(v)
			}
		case "every":
			if v, ok := p.integer(e.v, w, 1, 1<<31); ok {
				m.every = uint32(v)
			}
		case "after":
			m.after, m.hasAfter = p.duration(e.v, w, 365*24*time.Hour)
		case "until":
			m.until, m.hasUntil = p.duration(e.v, w, 365*24*time.Hour)
		case "probability":
			m.prob, m.hasProb = p.probability(e.v, w)
		case "limit":
			if v, ok := p.integer(e.v, w, 1, 1<<62); ok {
				m.limit = uint64(v)
			}
		case "limit-per-conn":
			if v, ok := p.integer(e.v, w, 1, 1<<62); ok {
				m.limitConn = uint64(v)
			}
		}
	}
	// Conditions that can never hold together.
	if flagsN != nil && (m.all != 0 || m.anyOf != 0 || m.none != 0) {
		p.errAt(flagsN, "%s: flags gives the exact set of flags; has, any and none cannot be combined with it", what)
	}
	if m.all&m.none != 0 {
		p.errAt(n, "%s: has and none both name %v: the rule could never match", what, m.all&m.none)
	}
	if m.hasAfter && m.hasUntil && m.until <= m.after {
		p.errAt(n, "%s: until (%v) must come after after (%v): the rule could never match", what, m.until, m.after)
	}
	if acksN != nil && m.from.set && len(m.from.prefixes) == 0 {
		if m.acks == ackDeviceFIN && !m.from.roles[Client] {
			p.errAt(acksN, "%s: acks: device-fin matches only segments from the client, but from: excludes it", what)
		}
		if m.acks == ackClientFIN && !m.from.roles[Device] {
			p.errAt(acksN, "%s: acks: client-fin matches only segments from the device, but from: excludes it", what)
		}
	}
	if m.hasExact && m.acks != 0 && m.exact&segment.ACK == 0 {
		p.errAt(acksN, "%s: acks: needs the ACK flag, but flags: %v has none", what, m.exact)
	}
	if m.hasExact && m.retrans == triTrue && m.exact&(segment.SYN|segment.FIN) == 0 && m.hasPayload && m.payMax == 0 {
		p.errAt(n, "%s: an empty segment without SYN or FIN is never a retransmission", what)
	}
}

// hostSpec parses a role, an address, a prefix, or a list of them.
func (p *parser) hostSpec(n *yaml.Node, what string, f *File) hostSpec {
	h := hostSpec{set: true}
	list := items(n)
	if len(list) == 0 {
		p.errAt(n, "%s: expected client, device, an address or a prefix, found %s", what, found(n))
		return h
	}
	for _, it := range list {
		s, ok := p.scalar(it, what, "client, device, an address or a prefix")
		if !ok {
			continue
		}
		if r, ok := parseRole(s); ok {
			if !f.HasRoles() {
				p.errAt(it, "%s: %s is a role, but the file has no hosts: saying which address plays it", what, s)
				continue
			}
			h.roles[r] = true
			continue
		}
		pf, err := parsePrefix(s)
		if err != nil {
			p.errAt(it, "%s: expected client, device, an address or a prefix, found %q%s", what, s, didYouMean(s, roleNames[:]))
			continue
		}
		h.prefixes = append(h.prefixes, pf)
	}
	return h
}

// role parses a role name.
func (p *parser) role(n *yaml.Node, what string, f *File) (Role, bool) {
	s, ok := p.scalar(n, what, "client or device")
	if !ok {
		return noRole, false
	}
	r, ok := parseRole(s)
	if !ok {
		p.errAt(n, "%s: expected client or device, found %q%s", what, s, didYouMean(s, roleNames[:]))
		return noRole, false
	}
	if !f.HasRoles() {
		p.errAt(n, "%s: %s is a role, but the file has no hosts: saying which address plays it", what, s)
		return noRole, false
	}
	return r, true
}

var flagNames = []string{"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"}

// flags parses "RST+ACK", a single name, or a list of names.
func (p *parser) flags(n *yaml.Node, what string) (segment.Flags, bool) {
	list := items(n)
	if len(list) == 0 {
		p.errAt(n, "%s: expected flags such as ACK, RST+ACK or [FIN, ACK], found %s", what, found(n))
		return 0, false
	}
	var out segment.Flags
	good := true
	for _, it := range list {
		s, ok := p.scalar(it, what, "flag names")
		if !ok {
			good = false
			continue
		}
		for _, part := range strings.Split(s, "+") {
			f, ok := segment.ParseFlags(part)
			if !ok || f == 0 || part != strings.ToUpper(part) || strings.ContainsAny(part, ", |") {
				hint := didYouMean(strings.ToUpper(part), flagNames)
				if strings.ContainsAny(strings.TrimSpace(part), ", |") {
					hint = " (join flags with +, as in RST+ACK, or list them: [RST, ACK])"
				}
				p.errAt(it, "%s: unknown flag %q%s; expected %s", what, part, hint, strings.Join(flagNames, ", "))
				good = false
				break // one error per value
			}
			out |= f
		}
	}
	if good && out == 0 {
		p.errAt(n, "%s: expected at least one flag", what)
		good = false
	}
	return out, good
}

// countMax is the largest count the language reads; ">N" means N+1 to
// countMax.
const countMax = 65535

// count parses a payload length or a count: N, "A..B", ">N", ">=N", "<N",
// "<=N", each from 0 to 65535.
func (p *parser) count(n *yaml.Node, what, noun string) (lo, hi int, ok bool) {
	const max = countMax
	n = deref(n)
	if n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
		v, ok := p.integer(n, what, 0, max)
		return int(v), int(v), ok
	}
	s, good := p.scalar(n, what, noun+" such as 0, >0 or 1..100")
	if !good {
		return 0, 0, false
	}
	bad := func() (int, int, bool) {
		p.errAt(n, "%s: expected %s such as 0, >0, <=100 or 1..100, found %q", what, noun, s)
		return 0, 0, false
	}
	num := func(t string) (int, bool) {
		v, err := strconv.Atoi(strings.TrimSpace(t))
		return v, err == nil && v >= 0 && v <= max
	}
	t := strings.TrimSpace(s)
	switch {
	case strings.Contains(t, ".."):
		a, b, _ := strings.Cut(t, "..")
		x, ok1 := num(a)
		y, ok2 := num(b)
		if !ok1 || !ok2 {
			return bad()
		}
		if x > y {
			p.errAt(n, "%s: the range %q is empty", what, s)
			return 0, 0, false
		}
		return x, y, true
	case strings.HasPrefix(t, ">="):
		if x, ok := num(t[2:]); ok {
			return x, max, true
		}
	case strings.HasPrefix(t, ">"):
		if x, ok := num(t[1:]); ok && x < max {
			return x + 1, max, true
		}
	case strings.HasPrefix(t, "<="):
		if x, ok := num(t[2:]); ok {
			return 0, x, true
		}
	case strings.HasPrefix(t, "<"):
		if x, ok := num(t[1:]); ok && x > 0 {
			return 0, x - 1, true
		}
	}
	return bad()
}

// states parses a state name or a list of them into a bit set.
func (p *parser) states(n *yaml.Node, what string) uint16 {
	list := items(n)
	if len(list) == 0 {
		p.errAt(n, "%s: expected a TCP state such as time-wait, found %s", what, found(n))
		return 0
	}
	var set uint16
	for _, it := range list {
		s, ok := p.scalar(it, what, "a TCP state")
		if !ok {
			continue
		}
		st, ok := tcpstate.ParseState(s)
		if !ok || st.String() != s {
			// One spelling only, the one the JSON Schema knows.
			hint := ""
			if ok {
				hint = fmt.Sprintf(" (did you mean %q?)", st.String())
			} else {
				hint = didYouMean(strings.ReplaceAll(strings.ToLower(s), "_", "-"), tcpstate.StateNames())
			}
			p.errAt(it, "%s: unknown state %q%s; expected one of %s", what, s, hint, strings.Join(tcpstate.StateNames(), ", "))
			continue
		}
		set |= 1 << st
	}
	return set
}

// acks parses an acknowledgment condition or a list of them.
func (p *parser) acks(n *yaml.Node, what string, f *File) uint8 {
	list := items(n)
	if len(list) == 0 {
		p.errAt(n, "%s: expected one of %s, found %s", what, strings.Join(ackNames, ", "), found(n))
		return 0
	}
	var set uint8
	for _, it := range list {
		s, ok := p.scalar(it, what, "syn, fin, client-fin or device-fin")
		if !ok {
			continue
		}
		i := -1
		for j, a := range ackNames {
			if a == s {
				i = j
			}
		}
		if i < 0 {
			p.errAt(it, "%s: expected one of %s, found %q%s", what, strings.Join(ackNames, ", "), s, didYouMean(s, ackNames))
			continue
		}
		if i >= 2 && !f.HasRoles() {
			p.errAt(it, "%s: %s names a role, but the file has no hosts: saying which address plays it (acks: fin needs none)", what, s)
			continue
		}
		set |= 1 << i
	}
	return set
}

// tri parses a true/false condition.
func (p *parser) tri(n *yaml.Node, what string) tri {
	v, ok := p.boolean(n, what)
	switch {
	case !ok:
		return triAny
	case v:
		return triTrue
	}
	return triFalse
}

// probability parses 0.25 or "25%".
func (p *parser) probability(n *yaml.Node, what string) (float64, bool) {
	n = deref(n)
	s, ok := p.scalar(n, what, "a probability such as 0.25 or 25%")
	if !ok {
		return 0, false
	}
	t := strings.TrimSpace(s)
	scale := 1.0
	if strings.HasSuffix(t, "%") {
		t, scale = strings.TrimSpace(strings.TrimSuffix(t, "%")), 100
	} else if tag := n.ShortTag(); tag != "!!float" && tag != "!!int" {
		p.errAt(n, "%s: expected a probability such as 0.25 or 25%%, found %s", what, found(n))
		return 0, false
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v/scale < 0 || v/scale > 1 || v != v {
		p.errAt(n, "%s: expected a probability from 0 to 1 (or 0%% to 100%%), found %s", what, found(n))
		return 0, false
	}
	return v / scale, true
}
