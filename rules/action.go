package rules

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/closeduel/closeduel/nfq"
	"github.com/closeduel/closeduel/segment"
	"gopkg.in/yaml.v3"
)

// actionKind is what a rule does to the segments it matches.
type actionKind uint8

const (
	actPass actionKind = iota
	actDrop
	actDelay
	actDuplicate
	actRewrite
	actInject
	actHold
	actLogOnly
	numActions
)

// actionNames are the actions in the language's words, indexed by
// actionKind.
var actionNames = []string{"pass", "drop", "delay", "duplicate", "rewrite", "inject", "hold-until-next", "log-only"}

// String returns the action's name in the rule language.
func (k actionKind) String() string {
	if k < numActions {
		return actionNames[k]
	}
	return "action(" + strconv.Itoa(int(k)) + ")"
}

// The parameters each action takes beside its own key in do:, and the keys
// of rewrite: and inject:.
var (
	actionParams = map[string][]string{
		"delay":           {"jitter", "distribution"},
		"duplicate":       {"gap"},
		"hold-until-next": {"max"},
	}
	rewriteKeys = []string{"flags", "set", "clear", "seq", "ack", "window", "strip-options", "repair-checksum"}
	injectKeys  = []string{"flags", "toward", "seq", "ack", "window", "count", "before", "original"}
	distNames   = []string{"uniform", "normal", "exponential"}
	towardNames = []string{"client", "device", "sender", "receiver"}
)

// Bounds of the actions' parameters.
const (
	maxDelay    = nfq.MaxDelay // the engine holds no packet longer
	maxHold     = nfq.MaxDelay
	defaultHold = time.Second
	maxDupCount = 16
	maxDupGap   = 10 * time.Second
)

type distKind uint8

const (
	distUniform distKind = iota
	distNormal
	distExponential
)

// seqMode says how a sequence or acknowledgment number is chosen.
type seqMode uint8

const (
	seqKeep     seqMode = iota // leave as is (rewrite) / tracker's next (inject)
	seqAbs                     // this number
	seqRel                     // the original (rewrite) or tracker's next (inject) plus v
	seqInWindow                // inject: inside the receiver's window, not the exact next
)

type seqSpec struct {
	mode seqMode
	v    int64
}

// rewrite is a compiled rewrite: action.
type rewrite struct {
	replace    bool
	flags      segment.Flags
	set, clear segment.Flags
	seq, ack   seqSpec
	window     int32 // -1: keep
	strip      bool
	repair     bool // recompute the checksums: a bad one becomes good
}

// towardKind says which host an injected segment goes to.
type towardKind uint8

const (
	towardClient towardKind = iota
	towardDevice
	towardSender
	towardReceiver
)

// inject is a compiled inject: action.
type inject struct {
	flags    segment.Flags
	toward   towardKind
	seq, ack seqSpec
	window   int32 // -1: the sender's last advertised window
	count    int
	before   bool
	drop     bool
}

// action is a compiled do:.
type action struct {
	kind          actionKind
	delay, jitter time.Duration
	dist          distKind
	count         int
	gap           time.Duration
	rw            rewrite
	inj           inject
	release       *match // hold-until-next: nil releases on any next segment
	holdMax       time.Duration
	text          string // what a rewrite changes, for Decision.Rewrote
}

// action parses a rule's do:.
func (p *parser) action(n *yaml.Node, f *File, m *match, a *action) {
	n = deref(n)
	if n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		switch s := n.Value; s {
		case "pass", "drop", "log-only":
			k := actPass
			for i, name := range actionNames {
				if name == s {
					k = actionKind(i)
				}
			}
			a.kind = k
		case "hold-until-next":
			a.kind, a.holdMax = actHold, defaultHold
		default:
			if slices.Contains(actionNames, s) {
				p.errAt(n, "do: %s needs parameters: write do: { %s: ... }", s, s)
				return
			}
			p.errAt(n, "do: unknown action %q%s; expected one of %s", s, didYouMean(s, actionNames), strings.Join(actionNames, ", "))
		}
		return
	}
	all := append([]string(nil), actionNames...)
	for _, name := range actionNames {
		all = append(all, actionParams[name]...)
	}
	pairs, ok := p.mapping(n, "do", all, func(key string) string {
		if slices.Contains(whenKeys, key) {
			return fmt.Sprintf(" (%s is a condition: put it under when:)", key)
		}
		if slices.Contains(rewriteKeys, key) || slices.Contains(injectKeys, key) {
			return fmt.Sprintf(" (%s belongs under rewrite: or inject:)", key)
		}
		return ""
	})
	if !ok {
		return
	}
	var act *kv
	for i := range pairs {
		e := &pairs[i]
		if !slices.Contains(actionNames, e.key) {
			continue
		}
		if act != nil {
			p.errAt(e.k, "do: one action per rule, found %s and %s", act.key, e.key)
			return
		}
		act = e
	}
	if act == nil {
		if len(pairs) > 0 {
			p.errAt(n, "do: expected an action (one of %s), found only its parameters", strings.Join(actionNames, ", "))
		} else {
			p.errAt(n, "do: expected an action, one of %s", strings.Join(actionNames, ", "))
		}
		return
	}
	for _, e := range pairs {
		if e.key != act.key && !slices.Contains(actionParams[act.key], e.key) {
			p.errAt(e.k, "do: %s is not a parameter of %s", e.key, act.key)
		}
	}
	params := map[string]*yaml.Node{}
	for _, e := range pairs {
		params[e.key] = e.v
	}
	w := "do: " + act.key
	switch act.key {
	case "pass", "drop", "log-only":
		if v := deref(act.v); !isNull(v) && !(v.Kind == yaml.ScalarNode && v.ShortTag() == "!!bool" && v.Value == "true") {
			p.errAt(act.v, "%s takes no value: write do: %s", w, act.key)
		}
		a.kind = actionKind(indexOf(actionNames, act.key))
	case "delay":
		a.kind = actDelay
		a.delay, _ = p.duration(act.v, w, maxDelay)
		if j, ok := params["jitter"]; ok {
			a.jitter, _ = p.duration(j, "do: jitter", maxDelay)
		}
		if d, ok := params["distribution"]; ok {
			s, ok := p.scalar(d, "do: distribution", "uniform, normal or exponential")
			if ok {
				i := indexOf(distNames, s)
				if i < 0 {
					p.errAt(d, "do: distribution: expected one of %s, found %q%s", strings.Join(distNames, ", "), s, didYouMean(s, distNames))
				} else {
					a.dist = distKind(i)
				}
			}
		}
		switch {
		case a.dist == distUniform && a.jitter > a.delay:
			p.errAt(params["jitter"], "do: jitter (%v) is larger than the delay (%v): a uniform delay cannot go below zero", a.jitter, a.delay)
		case a.dist == distNormal && a.jitter == 0:
			p.errAt(params["distribution"], "do: a normal distribution needs jitter: (its standard deviation)")
		case a.dist == distExponential && a.jitter != 0:
			p.errAt(params["jitter"], "do: an exponential distribution takes no jitter: its spread follows from the mean delay")
		}
	case "duplicate":
		a.kind, a.count = actDuplicate, 1
		if v, ok := p.integer(act.v, w, 1, int64(maxDupCount)); ok {
			a.count = int(v)
		}
		if g, ok := params["gap"]; ok {
			a.gap, _ = p.duration(g, "do: gap", maxDupGap)
		}
	case "rewrite":
		a.kind = actRewrite
		p.rewrite(act.v, &a.rw)
		a.text = a.rw.String()
	case "inject":
		a.kind = actInject
		p.inject(act.v, f, &a.inj)
	case "hold-until-next":
		a.kind, a.holdMax = actHold, defaultHold
		if v := deref(act.v); !isNull(v) && !(v.Kind == yaml.ScalarNode && v.ShortTag() == "!!bool" && v.Value == "true") {
			a.release = &match{}
			p.when(v, f, a.release, true)
		}
		if mx, ok := params["max"]; ok {
			if d, ok := p.duration(mx, "do: max", maxHold); ok {
				if d == 0 {
					p.errAt(mx, "do: max: expected a duration above zero")
				}
				a.holdMax = d
			}
		}
	}
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// rewrite parses rewrite:.
func (p *parser) rewrite(n *yaml.Node, rw *rewrite) {
	rw.window = -1
	pairs, ok := p.mapping(n, "rewrite", rewriteKeys, nil)
	if !ok {
		return
	}
	if len(pairs) == 0 {
		p.errAt(n, "rewrite: expected at least one of %s", strings.Join(rewriteKeys, ", "))
	}
	var flagsN *yaml.Node
	for _, e := range pairs {
		w := "rewrite: " + e.key
		switch e.key {
		case "flags":
			flagsN = e.k
			rw.flags, rw.replace = p.flags(e.v, w)
		case "set":
			rw.set, _ = p.flags(e.v, w)
		case "clear":
			rw.clear, _ = p.flags(e.v, w)
		case "seq":
			rw.seq = p.seqSpec(e.v, w, false)
		case "ack":
			rw.ack = p.seqSpec(e.v, w, false)
		case "window":
			if v, ok := p.integer(e.v, w, 0, 65535); ok {
				rw.window = int32(v)
			}
		case "strip-options":
			if v, ok := p.boolean(e.v, w); ok {
				rw.strip = v
				if !v {
					p.errAt(e.v, "%s: false changes nothing: leave it out", w)
				}
			}
		case "repair-checksum":
			if v, ok := p.boolean(e.v, w); ok {
				rw.repair = v
				if !v {
					p.errAt(e.v, "%s: false is the default (a bad checksum stays bad): leave it out", w)
				}
			}
		}
	}
	if flagsN != nil && (rw.set != 0 || rw.clear != 0) {
		p.errAt(flagsN, "rewrite: flags replaces every flag; set and clear cannot be combined with it")
	}
	if rw.set&rw.clear != 0 {
		p.errAt(n, "rewrite: set and clear both name %v", rw.set&rw.clear)
	}
}

// seqSpec parses a sequence number: absolute (12345), relative (+100,
// -1), or, for inject, next or in-window.
func (p *parser) seqSpec(n *yaml.Node, what string, forInject bool) seqSpec {
	s, ok := p.scalar(n, what, "a sequence number")
	if !ok {
		return seqSpec{}
	}
	t := strings.TrimSpace(s)
	if forInject {
		switch t {
		case "next":
			return seqSpec{mode: seqKeep}
		case "in-window":
			if strings.HasSuffix(what, "ack") {
				p.errAt(n, "%s: in-window applies to seq only", what)
				return seqSpec{}
			}
			return seqSpec{mode: seqInWindow}
		}
	}
	expected := "a number such as 12345, or +1000 / -1 relative to the segment's own"
	if forInject {
		expected = "next, in-window, a number such as 12345, or +1000 / -1 relative to the tracker's next"
	}
	if strings.HasPrefix(t, "+") || strings.HasPrefix(t, "-") {
		v, err := strconv.ParseInt(t, 10, 64)
		if err != nil || v < -(1<<31) || v > 1<<31-1 || v == 0 {
			p.errAt(n, "%s: expected %s (a relative change from -2147483648 to +2147483647, not 0), found %q", what, expected, s)
			return seqSpec{}
		}
		return seqSpec{mode: seqRel, v: v}
	}
	v, err := strconv.ParseUint(t, 10, 32)
	if err != nil {
		hint := ""
		if forInject {
			hint = didYouMean(t, []string{"next", "in-window"})
		}
		p.errAt(n, "%s: expected %s, found %q%s", what, expected, s, hint)
		return seqSpec{}
	}
	return seqSpec{mode: seqAbs, v: int64(v)}
}

// inject parses inject:.
func (p *parser) inject(n *yaml.Node, f *File, in *inject) {
	in.window, in.count = -1, 1
	pairs, ok := p.mapping(n, "inject", injectKeys, nil)
	if !ok {
		return
	}
	have := map[string]bool{}
	for _, e := range pairs {
		have[e.key] = true
		w := "inject: " + e.key
		switch e.key {
		case "flags":
			fl, ok := p.flags(e.v, w)
			if ok && (fl&^(segment.RST|segment.ACK|segment.FIN|segment.PSH) != 0 || fl&(segment.RST|segment.ACK|segment.FIN) == 0) {
				p.errAt(e.v, "%s: expected RST, ACK or FIN (with ACK or PSH), found %v", w, fl)
			}
			in.flags = fl
		case "toward":
			s, ok := p.scalar(e.v, w, "client, device, sender or receiver")
			if !ok {
				continue
			}
			i := indexOf(towardNames, s)
			switch {
			case i < 0:
				p.errAt(e.v, "%s: expected one of %s, found %q%s", w, strings.Join(towardNames, ", "), s, didYouMean(s, towardNames))
			case i < 2 && !f.HasRoles():
				p.errAt(e.v, "%s: %s is a role, but the file has no hosts: saying which address plays it (sender and receiver need none)", w, s)
			default:
				in.toward = towardKind(i)
			}
		case "seq":
			in.seq = p.seqSpec(e.v, w, true)
		case "ack":
			in.ack = p.seqSpec(e.v, w, true)
		case "window":
			if v, ok := p.integer(e.v, w, 0, 65535); ok {
				in.window = int32(v)
			}
		case "count":
			if v, ok := p.integer(e.v, w, 1, nfq.MaxInjects); ok {
				in.count = int(v)
			}
		case "before":
			in.before, _ = p.boolean(e.v, w)
		case "original":
			s, ok := p.scalar(e.v, w, "pass or drop")
			switch {
			case !ok:
			case s == "pass":
			case s == "drop":
				in.drop = true
			default:
				p.errAt(e.v, "%s: expected pass or drop, found %q%s", w, s, didYouMean(s, []string{"pass", "drop"}))
			}
		}
	}
	for _, k := range []string{"flags", "toward"} {
		if !have[k] {
			p.errAt(n, "inject: missing %s", k)
		}
	}
}

// String says what a rewrite changes, e.g. "flags=RST+ACK, ack+100000".
func (rw *rewrite) String() string {
	var parts []string
	if rw.replace {
		parts = append(parts, "flags="+rw.flags.String())
	}
	if rw.set != 0 {
		parts = append(parts, "set "+rw.set.String())
	}
	if rw.clear != 0 {
		parts = append(parts, "clear "+rw.clear.String())
	}
	for _, x := range []struct {
		name string
		s    seqSpec
	}{{"seq", rw.seq}, {"ack", rw.ack}} {
		switch x.s.mode {
		case seqAbs:
			parts = append(parts, fmt.Sprintf("%s=%d", x.name, x.s.v))
		case seqRel:
			parts = append(parts, fmt.Sprintf("%s%+d", x.name, x.s.v))
		}
	}
	if rw.window >= 0 {
		parts = append(parts, fmt.Sprintf("window=%d", rw.window))
	}
	if rw.strip {
		parts = append(parts, "options stripped")
	}
	if rw.repair {
		parts = append(parts, "checksum repaired")
	}
	return strings.Join(parts, ", ")
}
