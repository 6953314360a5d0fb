package rules

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/closeduel/closeduel/mitigate"
	"github.com/closeduel/closeduel/tcpstate"
	"gopkg.in/yaml.v3"
)

// Role is one of the two hosts an experiment is about.
type Role int8

// The roles. A rule file's hosts: mapping says which addresses play them.
const (
	Client Role = 0 // the Linux laptop in the story
	Device Role = 1 // the embedded device in the story
	noRole Role = -1
)

var roleNames = [2]string{"client", "device"}

// String returns "client" or "device".
func (r Role) String() string {
	if r == Client || r == Device {
		return roleNames[r]
	}
	return "no role"
}

func parseRole(s string) (Role, bool) {
	for i, n := range roleNames {
		if s == n {
			return Role(i), true
		}
	}
	return noRole, false
}

// File is a parsed and validated rule file: an experiment.
type File struct {
	// Experiment is the experiment's name, About what it is for.
	Experiment, About string
	// Path is the name the file was parsed under (its path for LoadFile).
	Path string
	// SHA256 is the hex SHA-256 of the file's bytes.
	SHA256 string
	// Seed seeds every random choice the rules make.
	Seed uint64
	// Hosts lists the addresses of each Role (indexed by Role); both are
	// nil when the file names no roles.
	Hosts [2][]netip.Prefix
	// Ports, when not empty, limits the experiment to connections with
	// one of these ports at either end.
	Ports []uint16
	// Stacks says which TCP stack each Role runs (indexed by Role).
	Stacks [2]tcpstate.Stack
	// MSL, Idle and MaxConns configure the connection tracker (zero means
	// the tracker's default).
	MSL, Idle time.Duration
	MaxConns  int
	// Mitigations are the middlebox mitigations switched on when the file
	// is loaded (its mitigations: section).
	Mitigations mitigate.Set
	// Rules are the rules in file order; the first that matches a segment
	// decides.
	Rules []Rule
	// Lab holds the lab: section's settings in file order: how
	// `closeduel lab` sets up the bench for this experiment. The engine
	// does not read them.
	Lab []LabSetting
	// Expect holds the expect: section: what a lab run should show on
	// each device.
	Expect []Expectation
	// Warnings are what Load found worth saying of a file it accepted (a
	// file that others may write).
	Warnings []string
}

// NeedsWholePacket reports whether some rule or mitigation needs every
// byte of a packet: a rewrite (a mitigation's too) hands the whole packet
// back to the kernel and a duplicate sends a copy of it. The other
// actions need only the headers, so the engine may copy just those from
// the kernel.
func (f *File) NeedsWholePacket() bool {
	if f.Mitigations != 0 {
		return true
	}
	for i := range f.Rules {
		if k := f.Rules[i].do.kind; k == actRewrite || k == actDuplicate {
			return true
		}
	}
	return false
}

// HasRoles reports whether the file names its hosts' roles.
func (f *File) HasRoles() bool { return f.Hosts[Client] != nil }

// StackOf says which stack the endpoint at a runs: the stacks: entry of
// the role whose hosts: hold its address, RFC9293 for any other address.
func (f *File) StackOf(a netip.AddrPort) tcpstate.Stack {
	for r, ps := range f.Hosts {
		for _, p := range ps {
			if p.Contains(a.Addr()) {
				return f.Stacks[r]
			}
		}
	}
	return tcpstate.RFC9293
}

// Rule is one rule of a File.
type Rule struct {
	// Name names the rule in the verdict log and for SetEnabled.
	Name string
	// Enabled says whether the rule is in force when the file is loaded.
	Enabled bool
	// Line and Column locate the rule in its file.
	Line, Column int
	when         match
	do           action
}

// The keys of each mapping of the language, in documentation order. The
// JSON Schema test checks rules/schema.json against these lists.
var (
	fileKeys    = []string{"experiment", "about", "hosts", "ports", "seed", "stacks", "tracker", "mitigations", "rules", "lab", "expect"}
	trackerKeys = []string{"msl", "idle", "max-conns"}
	ruleKeys    = []string{"name", "enabled", "when", "do"}
)

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// LoadFile is Load of a regular file that no one can interrupt.
func LoadFile(path string) (*File, error) {
	return Load(context.Background(), path, LoadOptions{})
}

// Parse parses and validates a rule file's bytes; name is used in errors
// and becomes File.Path. More than MaxFileBytes or MaxRules is an error.
func Parse(name string, data []byte) (*File, error) {
	if len(data) > MaxFileBytes {
		return nil, &LimitError{File: name, Msg: fmt.Sprintf("%d bytes, more than the limit of %d for a rule file", len(data), MaxFileBytes)}
	}
	p := &parser{name: name}
	sum := sha256.Sum256(data)
	f := &File{Path: name, SHA256: hex.EncodeToString(sum[:])}
	if root := p.decodeYAML(data); root != nil {
		p.file(root, f)
	}
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return f, nil
}

// file parses the top-level mapping.
func (p *parser) file(root *yaml.Node, f *File) {
	pairs, ok := p.mapping(root, "the file", fileKeys, func(key string) string {
		if slices.Contains(ruleKeys, key) || slices.Contains(whenKeys, key) || slices.Contains(actionNames, key) {
			return fmt.Sprintf(" (%s belongs inside a rule, under rules:)", key)
		}
		return ""
	})
	if !ok {
		return
	}
	var rulesNode, roleUse, mitUse *yaml.Node
	have := map[string]bool{}
	for _, e := range pairs {
		have[e.key] = true
		switch e.key {
		case "experiment":
			if s, ok := p.str(e.v, "experiment"); ok {
				if !namePattern.MatchString(s) {
					p.errAt(e.v, "experiment: expected a name of lower-case letters, digits and dashes, found %q", s)
				}
				f.Experiment = s
			}
		case "about":
			if s, ok := p.str(e.v, "about"); ok {
				f.About = escapeText(strings.Join(strings.Fields(s), " "))
			}
		case "hosts":
			p.hosts(e.v, f)
		case "ports":
			f.Ports = p.ports(e.v, "ports")
		case "seed":
			if v, ok := p.unsigned(e.v, "seed"); ok {
				f.Seed = v
			}
		case "stacks":
			roleUse = e.k
			p.stacks(e.v, f)
		case "tracker":
			p.tracker(e.v, f)
		case "mitigations":
			if p.mitigations(e.v, f) {
				mitUse = e.k
			}
		case "rules":
			rulesNode = e.v
		case "lab":
			p.lab(e.v, f)
		case "expect":
			p.expect(e.v, f)
		}
	}
	for _, k := range []string{"experiment", "about", "rules"} {
		if !have[k] {
			p.errAt(root, "missing %s: a rule file needs experiment, about and rules", k)
		}
	}
	if roleUse != nil && !f.HasRoles() {
		p.errAt(roleUse, "stacks: names roles, but the file has no hosts: saying which addresses play them")
	}
	if mitUse != nil && !f.HasRoles() {
		p.errAt(mitUse, "mitigations: act on the client's and the device's segments, but the file has no hosts: saying which addresses play them")
	}
	if rulesNode != nil {
		p.rules(rulesNode, f)
	}
}

// mitigations parses the name → on|off mapping; it reports whether any
// mitigation is switched on.
func (p *parser) mitigations(n *yaml.Node, f *File) bool {
	pairs, ok := p.mapping(n, "mitigations", mitigate.Names(), nil)
	if !ok {
		return false
	}
	for _, e := range pairs {
		m, _ := mitigate.ParseName(e.key)
		s, ok := p.scalar(e.v, "mitigations: "+e.key, "on or off")
		if !ok {
			continue
		}
		switch s {
		case "on":
			f.Mitigations = f.Mitigations.With(m, true)
		case "off":
		default:
			p.errAt(e.v, "mitigations: %s: expected on or off, found %q", e.key, s)
		}
	}
	return f.Mitigations != 0
}

// hosts parses the role → address mapping.
func (p *parser) hosts(n *yaml.Node, f *File) {
	pairs, ok := p.mapping(n, "hosts", roleNames[:], nil)
	if !ok {
		return
	}
	for _, e := range pairs {
		r, _ := parseRole(e.key)
		prefixes := p.prefixes(e.v, "hosts: "+e.key)
		if prefixes == nil {
			prefixes = []netip.Prefix{} // mark the role as named
		}
		f.Hosts[r] = prefixes
	}
	if len(pairs) != 2 {
		p.errAt(n, "hosts: expected both client and device, found %d of them", len(pairs))
		f.Hosts = [2][]netip.Prefix{}
		return
	}
	for _, a := range f.Hosts[Client] {
		for _, b := range f.Hosts[Device] {
			if a.Overlaps(b) {
				p.errAt(n, "hosts: client %v and device %v overlap: a segment's direction would be ambiguous", a, b)
				return
			}
		}
	}
}

// prefixes parses an address, a CIDR prefix, or a list of them.
func (p *parser) prefixes(n *yaml.Node, what string) []netip.Prefix {
	list := items(n)
	if len(list) == 0 {
		p.errAt(n, "%s: expected an address or a CIDR prefix, found %s", what, found(n))
		return nil
	}
	var out []netip.Prefix
	for _, it := range list {
		s, ok := p.scalar(it, what, "an address or a CIDR prefix")
		if !ok {
			continue
		}
		pf, err := parsePrefix(s)
		if err != nil {
			p.errAt(it, "%s: expected an address such as 192.168.100.99 or a prefix such as 192.168.100.0/24, found %q", what, s)
			continue
		}
		out = append(out, pf)
	}
	return out
}

func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		pf, err := netip.ParsePrefix(s)
		if err != nil {
			return pf, err
		}
		return pf.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ports parses a port or a list of ports.
func (p *parser) ports(n *yaml.Node, what string) []uint16 {
	list := items(n)
	if len(list) == 0 {
		p.errAt(n, "%s: expected a port or a list of ports, found %s", what, found(n))
		return nil
	}
	var out []uint16
	for _, it := range list {
		if v, ok := p.integer(it, what, 1, 65535); ok {
			out = append(out, uint16(v))
		}
	}
	return out
}

// stacks parses the role → stack mapping.
func (p *parser) stacks(n *yaml.Node, f *File) {
	pairs, ok := p.mapping(n, "stacks", roleNames[:], nil)
	if !ok {
		return
	}
	for _, e := range pairs {
		r, _ := parseRole(e.key)
		s, ok := p.scalar(e.v, "stacks: "+e.key, "a stack name")
		if !ok {
			continue
		}
		st, ok := tcpstate.ParseStack(s)
		if !ok || st.String() != s {
			p.errAt(e.v, "stacks: %s: unknown stack %q%s; expected one of %s", e.key, s, didYouMean(strings.ToLower(s), tcpstate.StackNames()), strings.Join(tcpstate.StackNames(), ", "))
			continue
		}
		f.Stacks[r] = st
	}
}

// tracker parses the tracker settings.
func (p *parser) tracker(n *yaml.Node, f *File) {
	pairs, ok := p.mapping(n, "tracker", trackerKeys, nil)
	if !ok {
		return
	}
	for _, e := range pairs {
		switch e.key {
		case "msl":
			if d, ok := p.duration(e.v, "tracker: msl", time.Hour); ok {
				if d < time.Second {
					p.errAt(e.v, "tracker: msl: expected at least 1s, found %v", d)
				}
				f.MSL = d
			}
		case "idle":
			if d, ok := p.duration(e.v, "tracker: idle", 24*time.Hour); ok {
				if d < time.Second {
					p.errAt(e.v, "tracker: idle: expected at least 1s, found %v", d)
				}
				f.Idle = d
			}
		case "max-conns":
			if v, ok := p.integer(e.v, "tracker: max-conns", 1, 1<<20); ok {
				f.MaxConns = int(v)
			}
		}
	}
}

// rules parses the rule list.
func (p *parser) rules(n *yaml.Node, f *File) {
	n = deref(n)
	if isNull(n) {
		p.errAt(n, "rules: expected a list of rules, found nothing (write rules: [] for an experiment that only observes)")
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.errAt(n, "rules: expected a list of rules, found %s", found(n))
		return
	}
	if len(n.Content) > MaxRules {
		p.errAt(n, "rules: %d rules, more than the limit of %d for a rule file (every rule is tried on every packet)", len(n.Content), MaxRules)
		return
	}
	names := map[string]bool{}
	for _, rn := range n.Content {
		rn = deref(rn)
		r := Rule{Enabled: true, Line: rn.Line, Column: rn.Column}
		if p.rule(rn, f, &r) {
			if names[r.Name] {
				p.errAt(rn, "rules: a second rule named %q: names must be unique", r.Name)
				continue
			}
			names[r.Name] = true
			f.Rules = append(f.Rules, r)
		}
	}
}

// rule parses one rule; it reports whether the rule is whole.
func (p *parser) rule(n *yaml.Node, f *File, r *Rule) bool {
	pairs, ok := p.mapping(n, "rule", ruleKeys, func(key string) string {
		switch {
		case slices.Contains(whenKeys, key):
			return fmt.Sprintf(" (%s is a condition: put it under when:)", key)
		case slices.Contains(actionNames, key):
			return fmt.Sprintf(" (%s is an action: write do: %s)", key, key)
		}
		return ""
	})
	if !ok {
		return false
	}
	before := len(p.errs)
	var doNode *yaml.Node
	haveDo := false
	for _, e := range pairs {
		switch e.key {
		case "name":
			if s, ok := p.str(e.v, "name"); ok {
				if !namePattern.MatchString(s) {
					p.errAt(e.v, "name: expected lower-case letters, digits and dashes, found %q", s)
				}
				r.Name = s
			}
		case "enabled":
			if v, ok := p.boolean(e.v, "enabled"); ok {
				r.Enabled = v
			}
		case "when":
			p.when(e.v, f, &r.when, false)
		case "do":
			haveDo = true
			doNode = e.v
		}
	}
	if r.Name == "" && len(p.errs) == before {
		p.errAt(n, "rule: missing name")
	}
	if !haveDo {
		p.errAt(n, "rule %s: missing do: the action to take", quoteName(r.Name))
	} else {
		p.action(doNode, f, &r.when, &r.do)
	}
	return len(p.errs) == before
}

func quoteName(s string) string {
	if s == "" {
		return "(unnamed)"
	}
	return s
}

// escapeText makes free text from a file safe to print on a terminal: a
// character that is not printable (ESC, NUL, a bidi override) becomes its
// Go escape (\x1b, \x00, \u202e).
func escapeText(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == ' ' || (unicode.IsPrint(r) && r != utf8.RuneError) {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRune(r) // '\x1b'
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}
