package rules

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/closeduel/closeduel/lab/schedule"
)

// LabSetting is one setting of a rule file's lab: section: a bench
// setting that shapes the experiment. `closeduel lab --rules FILE` applies
// it as if its flag had been given (a flag given on the command line
// wins); `closeduel run` ignores the section.
type LabSetting struct {
	// Key is the setting's path in the section: "device.pool",
	// "workload.schedule", "quiet", "sysctls.net.ipv4.tcp_rfc1337".
	Key string
	// Flag is the `closeduel lab` flag that sets the same thing ("pool",
	// "schedule", "sysctl").
	Flag string
	// Value is the value as the flag spells it ("5", "3x1s", "true",
	// "net.ipv4.tcp_rfc1337=1" for a sysctl).
	Value string
	// Line and Column locate the value in the file.
	Line, Column int
}

// Expectation is one line of a rule file's expect: section: what a lab
// run of the experiment against one device should show.
type Expectation struct {
	// Device is the device kind the expectation is about: "lwip" or
	// "linux".
	Device string
	// Figure names the run's figure (one of ExpectFigures).
	Figure string
	// Lo and Hi bound the figure, both included.
	Lo, Hi int
	// Line and Column locate the expectation in the file.
	Line, Column int
}

// Holds reports whether a figure's value meets the expectation.
func (e Expectation) Holds(v int) bool { return v >= e.Lo && v <= e.Hi }

// String says the expectation in the rule language's count spelling:
// "duels > 0", "duels == 0", "requests-failed 1..3".
func (e Expectation) String() string { return e.Figure + " " + countText(e.Lo, e.Hi) }

// countText spells a count range as the language reads it.
func countText(lo, hi int) string {
	switch {
	case lo == hi:
		return "== " + strconv.Itoa(lo)
	case hi >= countMax && lo > 0:
		return "> " + strconv.Itoa(lo-1)
	case hi >= countMax:
		return ">= 0"
	case lo == 0:
		return "<= " + strconv.Itoa(hi)
	}
	return fmt.Sprintf("%d..%d", lo, hi)
}

// labSetting describes one key of the lab: section: its flag and how its
// value is checked.
type labSetting struct {
	section, key, flag string
	kind               labKind
	lo, hi             int64         // labInt
	max                time.Duration // labDuration
	words              []string      // labWord
	doc                string
}

type labKind uint8

const (
	labInt labKind = iota
	labDuration
	labWord
	labBool
	labSchedule
	labPortRange
)

// labSettings lists the lab: section's keys in documentation order; the
// JSON Schema test checks rules/schema.json against it.
var labSettings = []labSetting{
	{section: "device", key: "close", flag: "close", kind: labWord, words: []string{"close", "wait", "abort"},
		doc: "close: FIN once the response is acked (the device closes first); wait: for the client's FIN (the device closes second); abort: RST"},
	{section: "device", key: "size", flag: "size", kind: labInt, lo: 0, hi: 60000, doc: "response body octets (32)"},
	{section: "device", key: "pool", flag: "pool", kind: labInt, lo: 0, hi: 100000, doc: "lwIP pcbs (active + TIME_WAIT) the device may hold (5, as the ESP8266; 0: no limit)"},
	{section: "device", key: "busy-close", flag: "busy-close", kind: labBool, doc: "the lwIP device takes in no acknowledgment of its own FIN, as one too busy at close (the Linux device ignores it)"},
	{section: "device", key: "time-wait", flag: "time-wait", kind: labDuration, max: time.Hour, doc: "lwIP TIME_WAIT length (0s: lwIP's 2*TCP_MSL, 120 s)"},
	{section: "workload", key: "schedule", flag: "schedule", kind: labSchedule, doc: "gaps between request starts, as 10x1s,40x200ms"},
	{section: "workload", key: "concurrency", flag: "concurrency", kind: labInt, lo: 1, hi: 1024, doc: "requests in flight at most (1)"},
	{section: "workload", key: "client-close", flag: "client-close", kind: labWord, words: []string{"head", "eof"},
		doc: "head: close once the response head is in (races the device's FIN, as curl -I); eof: after the device's close"},
	{section: "workload", key: "timeout", flag: "timeout", kind: labDuration, max: 10 * time.Minute, doc: "per request (10s; 0s: the kernel's SYN retries decide)"},
	{section: "workload", key: "ports", flag: "ports", kind: labPortRange, doc: "client local port range LOW-HIGH (net.ipv4.ip_local_port_range)"},
	{section: "workload", key: "random-ports", flag: "random-ports", kind: labBool, doc: "the client picks each local port at random in its range instead of the kernel's sequential search"},
	{section: "workload", key: "linger0", flag: "linger0", kind: labBool, doc: "the client sets SO_LINGER 0: its close sends RST"},
	{section: "", key: "quiet", flag: "quiet", kind: labDuration, max: 10 * time.Minute, doc: "how long the bench keeps watching after the client stopped (30s)"},
}

// The keys of the lab: section and of its parts, in documentation order.
var (
	labKeys      = []string{"device", "workload", "sysctls", "quiet"}
	labSysctlKey = "sysctls"
	// ExpectDevices are the device kinds expect: names.
	ExpectDevices = []string{"lwip", "linux"}
	// ExpectFigures are the figures an expectation can name, in
	// documentation order: the analysis' totals (analysis/DEFINITIONS.md)
	// and what only the lab knows.
	ExpectFigures = []string{
		"duels", "duels-after-workload", "duel-segments", "requests-ok", "requests-failed",
		"rsts", "ignored-rsts", "fin-retransmissions", "syn-retransmissions", "time-wait-reuses",
		"drops", "segments-after-stop", "last-after-stop-s", "pool-kills", "busy-dropped",
	}
)

func labSectionKeys(section string) []string {
	var out []string
	for _, s := range labSettings {
		if s.section == section {
			out = append(out, s.key)
		}
	}
	return out
}

// lab parses the lab: section.
func (p *parser) lab(n *yaml.Node, f *File) {
	pairs, ok := p.mapping(n, "lab", labKeys, nil)
	if !ok {
		return
	}
	for _, e := range pairs {
		switch e.key {
		case "device", "workload":
			inner, ok := p.mapping(e.v, "lab: "+e.key, labSectionKeys(e.key), nil)
			if !ok {
				continue
			}
			for _, ie := range inner {
				p.labValue(ie.v, e.key, ie.key, f)
			}
		case labSysctlKey:
			p.labSysctls(e.v, f)
		default:
			p.labValue(e.v, "", e.key, f)
		}
	}
}

// labValue checks one setting's value and appends it to f.Lab.
func (p *parser) labValue(n *yaml.Node, section, key string, f *File) {
	i := slices.IndexFunc(labSettings, func(s labSetting) bool { return s.section == section && s.key == key })
	s := labSettings[i]
	path := key
	if section != "" {
		path = section + "." + key
	}
	what := "lab: " + path
	var v string
	ok := false
	switch s.kind {
	case labInt:
		var x int64
		if x, ok = p.integer(n, what, s.lo, s.hi); ok {
			v = strconv.FormatInt(x, 10)
		}
	case labDuration:
		var d time.Duration
		if d, ok = p.duration(n, what, s.max); ok {
			v = d.String()
		}
	case labBool:
		var b bool
		if b, ok = p.boolean(n, what); ok {
			v = strconv.FormatBool(b)
		}
	case labWord:
		if v, ok = p.scalar(n, what, "one of "+strings.Join(s.words, ", ")); ok && !slices.Contains(s.words, v) {
			p.errAt(n, "%s: unknown value %q%s; expected one of %s", what, v, didYouMean(v, s.words), strings.Join(s.words, ", "))
			ok = false
		}
	case labSchedule:
		if v, ok = p.scalar(n, what, "a schedule such as 10x1s,40x200ms"); ok {
			if _, err := schedule.Parse(v); err != nil {
				p.errAt(n, "%s: expected a schedule such as 10x1s,40x200ms, found %q (%v)", what, v, strings.TrimPrefix(err.Error(), "schedule: "))
				ok = false
			}
		}
	case labPortRange:
		if v, ok = p.scalar(n, what, "a port range such as 40000-40001"); ok {
			if !validPortRange(v) {
				p.errAt(n, "%s: expected a port range LOW-HIGH within 1024-65535 such as 40000-40001, found %q", what, v)
				ok = false
			}
		}
	}
	if ok {
		nn := deref(n)
		f.Lab = append(f.Lab, LabSetting{Key: path, Flag: s.flag, Value: v, Line: nn.Line, Column: nn.Column})
	}
}

func validPortRange(s string) bool {
	lo, hi, ok := strings.Cut(s, "-")
	if !ok {
		return false
	}
	l, err1 := strconv.Atoi(strings.TrimSpace(lo))
	h, err2 := strconv.Atoi(strings.TrimSpace(hi))
	return err1 == nil && err2 == nil && l >= 1024 && h <= 65535 && l <= h
}

// labSysctls parses the client namespace's sysctls: net.* keys with
// scalar values.
func (p *parser) labSysctls(n *yaml.Node, f *File) {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		p.errAt(n, "lab: sysctls: expected a mapping of net.* sysctls to values, found %s", found(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode || !strings.HasPrefix(k.Value, "net.") || strings.ContainsAny(k.Value, " =/") {
			p.errAt(k, "lab: sysctls: expected a network sysctl such as net.ipv4.tcp_rfc1337 (only net.* are per namespace), found %s", found(k))
			continue
		}
		if seen[k.Value] {
			p.errAt(k, "lab: sysctls: key %q appears twice", k.Value)
			continue
		}
		seen[k.Value] = true
		val, ok := p.scalar(v, "lab: sysctls: "+k.Value, "a value")
		if !ok {
			continue
		}
		if strings.ContainsAny(val, "\n=") {
			p.errAt(v, "lab: sysctls: %s: expected a one-line value without '=', found %q", k.Value, val)
			continue
		}
		f.Lab = append(f.Lab, LabSetting{Key: "sysctls." + k.Value, Flag: "sysctl", Value: k.Value + "=" + val, Line: v.Line, Column: v.Column})
	}
}

// expect parses the expect: section: device → figure → count.
func (p *parser) expect(n *yaml.Node, f *File) {
	pairs, ok := p.mapping(n, "expect", ExpectDevices, nil)
	if !ok {
		return
	}
	for _, e := range pairs {
		figs, ok := p.mapping(e.v, "expect: "+e.key, ExpectFigures, nil)
		if !ok {
			continue
		}
		if len(figs) == 0 {
			p.errAt(e.v, "expect: %s: expected at least one figure such as duels: \">0\"", e.key)
		}
		for _, fe := range figs {
			lo, hi, ok := p.count(fe.v, "expect: "+e.key+": "+fe.key, "a count")
			if !ok {
				continue
			}
			vn := deref(fe.v)
			f.Expect = append(f.Expect, Expectation{Device: e.key, Figure: fe.key, Lo: lo, Hi: hi, Line: vn.Line, Column: vn.Column})
		}
	}
}

// ExpectFor returns the file's expectations about one device kind.
func (f *File) ExpectFor(device string) []Expectation {
	var out []Expectation
	for _, e := range f.Expect {
		if e.Device == device {
			out = append(out, e)
		}
	}
	return out
}

// describeLab says in plain words what the lab: and expect: sections set.
func (f *File) describeLab() []string {
	var out []string
	if len(f.Lab) > 0 {
		parts := make([]string, len(f.Lab))
		for i, s := range f.Lab {
			v := s.Value
			if s.Flag == "sysctl" {
				_, v, _ = strings.Cut(v, "=")
			}
			parts[i] = s.Key + " " + v
		}
		out = append(out, "lab (closeduel lab only; flags override): "+strings.Join(parts, ", "))
	}
	devs := map[string][]string{}
	for _, e := range f.Expect {
		devs[e.Device] = append(devs[e.Device], e.String())
	}
	names := make([]string, 0, len(devs))
	for d := range devs {
		names = append(names, d)
	}
	sort.Strings(names)
	for _, d := range names {
		out = append(out, fmt.Sprintf("expects on %s: %s", d, strings.Join(devs[d], ", ")))
	}
	return out
}
