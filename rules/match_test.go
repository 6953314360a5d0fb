package rules

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/closeduel/closeduel/segment"
	"github.com/closeduel/closeduel/tcpstate"
)

// spec is a random when: in source form; ref evaluates it the slow,
// obvious way, on names and strings, for the differential test.
type spec struct {
	from, to               []string
	ports                  []int
	flags                  []string // exact, or:
	has, anyOf, none       []string
	payload                string
	client, device         []string
	acks                   []string
	retrans, reuses, rst   string // "", "true", "false"
	clientFins, deviceFins string // "" or a count spec
}

var (
	refHosts = map[string]string{"client": "192.168.100.1", "device": "192.168.100.99"}
	refAddrs = []string{"client", "device", "192.168.100.1", "192.168.100.99", "192.168.100.0/24", "10.0.0.0/8"}
)

func pick[T any](r *rand.Rand, from []T, max int) []T {
	n := 1 + r.IntN(max)
	out := make([]T, 0, n)
	for range n {
		x := from[r.IntN(len(from))]
		if !slices.ContainsFunc(out, func(y T) bool { return fmt.Sprint(x) == fmt.Sprint(y) }) {
			out = append(out, x)
		}
	}
	return out
}

func randomSpec(r *rand.Rand) spec {
	var s spec
	if r.IntN(3) == 0 {
		s.from = pick(r, refAddrs, 2)
	}
	if r.IntN(4) == 0 {
		s.to = pick(r, refAddrs, 2)
	}
	if r.IntN(4) == 0 {
		s.ports = pick(r, []int{80, 40000, 40001, 443}, 2)
	}
	if r.IntN(3) == 0 {
		s.flags = pick(r, flagNames[:5], 3)
	} else {
		if r.IntN(2) == 0 {
			s.has = pick(r, flagNames[:5], 2)
		}
		if r.IntN(2) == 0 {
			s.anyOf = pick(r, flagNames[:5], 2)
		}
		if r.IntN(2) == 0 {
			s.none = pick(r, flagNames[:5], 1)
		}
		if slices.ContainsFunc(s.none, func(f string) bool { return slices.Contains(s.has, f) }) {
			s.none = nil
		}
	}
	if r.IntN(3) == 0 {
		s.payload = []string{"0", ">0", ">=20", "<20", "<=100", "1..20", "20..20"}[r.IntN(7)]
	}
	states := tcpstate.StateNames()
	if r.IntN(3) == 0 {
		s.client = pick(r, states, 3)
	}
	if r.IntN(3) == 0 {
		s.device = pick(r, states, 3)
	}
	if r.IntN(3) == 0 {
		s.acks = pick(r, ackNames, 2)
	}
	fins := func() string { return []string{"", "", "", "0", "1", ">1", "<2", "1..2"}[r.IntN(8)] }
	s.clientFins, s.deviceFins = fins(), fins()
	tri := func() string { return []string{"", "", "true", "false"}[r.IntN(4)] }
	s.retrans, s.reuses, s.rst = tri(), tri(), tri()
	return s
}

func yamlList[T any](xs []T) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return "[" + strings.Join(s, ", ") + "]"
}

func (s spec) yaml() string {
	var parts []string
	add := func(k, v string) { parts = append(parts, k+": "+v) }
	if s.from != nil {
		add("from", yamlList(s.from))
	}
	if s.to != nil {
		add("to", yamlList(s.to))
	}
	if s.ports != nil {
		add("ports", yamlList(s.ports))
	}
	for _, x := range []struct {
		k string
		v []string
	}{{"flags", s.flags}, {"has", s.has}, {"any", s.anyOf}, {"none", s.none}, {"client", s.client}, {"device", s.device}, {"acks", s.acks}} {
		if x.v != nil {
			add(x.k, yamlList(x.v))
		}
	}
	if _, err := strconv.Atoi(s.payload); err == nil {
		add("payload", s.payload)
	} else if s.payload != "" {
		add("payload", strconv.Quote(s.payload))
	}
	for _, x := range []struct{ k, v string }{{"client-fins", s.clientFins}, {"device-fins", s.deviceFins}} {
		if _, err := strconv.Atoi(x.v); err == nil {
			add(x.k, x.v)
		} else if x.v != "" {
			add(x.k, strconv.Quote(x.v))
		}
	}
	for _, x := range []struct{ k, v string }{{"retransmission", s.retrans}, {"reuses-tuple", s.reuses}, {"after-rst", s.rst}} {
		if x.v != "" {
			add(x.k, x.v)
		}
	}
	return "{ " + strings.Join(parts, ", ") + " }"
}

// refCase is one segment as the reference sees it.
type refCase struct {
	fromRole, toRole string
	src, dst         netip.AddrPort
	flags            []string
	payload          int
	state            map[string]string
	fins             map[string]int
	events           map[string]bool
}

// refCount evaluates a count spec the obvious way.
func refCount(spec string, n int) bool {
	switch {
	case spec == "":
		return true
	case strings.Contains(spec, ".."):
		lo, hi, _ := strings.Cut(spec, "..")
		a, _ := strconv.Atoi(lo)
		b, _ := strconv.Atoi(hi)
		return a <= n && n <= b
	case strings.HasPrefix(spec, ">="):
		v, _ := strconv.Atoi(spec[2:])
		return n >= v
	case strings.HasPrefix(spec, ">"):
		v, _ := strconv.Atoi(spec[1:])
		return n > v
	case strings.HasPrefix(spec, "<="):
		v, _ := strconv.Atoi(spec[2:])
		return n <= v
	case strings.HasPrefix(spec, "<"):
		v, _ := strconv.Atoi(spec[1:])
		return n < v
	}
	v, _ := strconv.Atoi(spec)
	return n == v
}

func inList(xs []string, x string) bool { return slices.Contains(xs, x) }

func refHost(list []string, role string, a netip.Addr) bool {
	if list == nil {
		return true
	}
	for _, x := range list {
		if x == role {
			return true
		}
		if strings.Contains(x, "/") {
			if netip.MustParsePrefix(x).Contains(a) {
				return true
			}
		} else if _, isRole := refHosts[x]; !isRole && netip.MustParseAddr(x) == a {
			return true
		}
	}
	return false
}

func (s spec) ref(c refCase) bool {
	if !refHost(s.from, c.fromRole, c.src.Addr()) || !refHost(s.to, c.toRole, c.dst.Addr()) {
		return false
	}
	if s.ports != nil && !slices.ContainsFunc(s.ports, func(p int) bool { return p == int(c.src.Port()) || p == int(c.dst.Port()) }) {
		return false
	}
	if s.flags != nil {
		a, b := slices.Clone(s.flags), slices.Clone(c.flags)
		slices.Sort(a)
		slices.Sort(b)
		if !slices.Equal(a, b) {
			return false
		}
	}
	for _, f := range s.has {
		if !inList(c.flags, f) {
			return false
		}
	}
	if len(s.anyOf) > 0 && !slices.ContainsFunc(s.anyOf, func(f string) bool { return inList(c.flags, f) }) {
		return false
	}
	for _, f := range s.none {
		if inList(c.flags, f) {
			return false
		}
	}
	n := c.payload
	switch p := s.payload; {
	case p == "":
	case strings.Contains(p, ".."):
		lo, hi, _ := strings.Cut(p, "..")
		a, _ := strconv.Atoi(lo)
		b, _ := strconv.Atoi(hi)
		if n < a || n > b {
			return false
		}
	case strings.HasPrefix(p, ">="):
		if v, _ := strconv.Atoi(p[2:]); n < v {
			return false
		}
	case strings.HasPrefix(p, ">"):
		if v, _ := strconv.Atoi(p[1:]); n <= v {
			return false
		}
	case strings.HasPrefix(p, "<="):
		if v, _ := strconv.Atoi(p[2:]); n > v {
			return false
		}
	case strings.HasPrefix(p, "<"):
		if v, _ := strconv.Atoi(p[1:]); n >= v {
			return false
		}
	default:
		if v, _ := strconv.Atoi(p); n != v {
			return false
		}
	}
	if !refCount(s.clientFins, c.fins["client"]) || !refCount(s.deviceFins, c.fins["device"]) {
		return false
	}
	if s.client != nil && !inList(s.client, c.state["client"]) || s.device != nil && !inList(s.device, c.state["device"]) {
		return false
	}
	if s.acks != nil {
		ok := false
		for _, a := range s.acks {
			switch a {
			case "syn":
				ok = ok || c.events["acks-syn"]
			case "fin":
				ok = ok || c.events["acks-fin"]
			case "device-fin":
				ok = ok || c.events["acks-fin"] && c.fromRole == "client"
			case "client-fin":
				ok = ok || c.events["acks-fin"] && c.fromRole == "device"
			}
		}
		if !ok {
			return false
		}
	}
	for _, x := range []struct{ want, ev string }{{s.retrans, "retransmission"}, {s.reuses, "reuses-tuple"}, {s.rst, "after-rst"}} {
		if x.want != "" && (x.want == "true") != c.events[x.ev] {
			return false
		}
	}
	return true
}

func TestMatcherAgreesWithReference(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	addrs := map[string][]netip.Addr{
		"client": {netip.MustParseAddr("192.168.100.1"), netip.MustParseAddr("10.1.2.3")},
		"device": {netip.MustParseAddr("192.168.100.99"), netip.MustParseAddr("192.168.100.7")},
	}
	parsed, matched, rejected := 0, 0, 0
	for range 3000 {
		s := randomSpec(r)
		src := "experiment: d\nabout: Differential.\nhosts: { client: [192.168.100.1, 10.0.0.0/8], device: [192.168.100.99, 192.168.100.7] }\nrules:\n  - name: r\n    when: " + s.yaml() + "\n    do: drop\n"
		f, err := Parse("d.yaml", []byte(src))
		if err != nil {
			if rejected++; rejected < 5 {
				t.Log(err)
			}
			continue // a contradiction the parser rejects
		}
		parsed++
		m := &f.Rules[0].when
		for range 50 {
			fromRole := []string{"client", "device"}[r.IntN(2)]
			toRole := map[string]string{"client": "device", "device": "client"}[fromRole]
			c := refCase{
				fromRole: fromRole, toRole: toRole,
				src:     netip.AddrPortFrom(addrs[fromRole][r.IntN(2)], []uint16{80, 40000}[r.IntN(2)]),
				dst:     netip.AddrPortFrom(addrs[toRole][r.IntN(2)], []uint16{80, 40001}[r.IntN(2)]),
				payload: []int{0, 1, 19, 20, 21, 100, 101}[r.IntN(7)],
				state:   map[string]string{},
				fins:    map[string]int{},
				events:  map[string]bool{},
			}
			var fl segment.Flags
			for i, name := range flagNames[:5] {
				if r.IntN(3) == 0 {
					fl |= 1 << i
					c.flags = append(c.flags, name)
				}
			}
			res := tcpstate.Result{Conn: &tcpstate.Conn{FirstCloser: -1}, From: r.IntN(2)}
			for _, role := range []string{"client", "device"} {
				st := tcpstate.State(r.IntN(11))
				c.state[role] = st.String()
				end := res.From
				if role != fromRole {
					end = 1 - res.From
				}
				res.Before[end] = st
				n := r.IntN(4)
				c.fins[role] = n
				res.Fins[end] = uint32(n)
			}
			for i, name := range []string{"retransmission", "acks-syn", "acks-fin", "reuses-tuple", "after-rst"} {
				ev := []tcpstate.Event{tcpstate.Retransmission, tcpstate.AcksSYN, tcpstate.AcksFIN, tcpstate.ReusesTuple, tcpstate.AfterRST}[i]
				if r.IntN(3) == 0 {
					res.Events |= ev
					c.events[name] = true
				}
			}
			seg := segment.Segment{Src: c.src, Dst: c.dst, Flags: fl, PayloadLen: c.payload}
			role := Client
			if fromRole == "device" {
				role = Device
			}
			v := view{seg: &seg, res: &res, fromRole: role}
			got, want := m.static(&v), s.ref(c)
			if got != want {
				t.Fatalf("when %s\nsegment %+v\nstates %v events %v: matcher says %v, reference %v", s.yaml(), seg, c.state, c.events, got, want)
			}
			if got {
				matched++
			}
		}
	}
	if parsed < 2000 || matched < 1000 {
		t.Errorf("only %d specs parsed and %d segments matched: the test is too weak", parsed, matched)
	}
	t.Logf("%d specs, %d matching segments", parsed, matched)
}
