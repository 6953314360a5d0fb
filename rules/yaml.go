package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// parser collects the errors of one file while walking its YAML nodes.
type parser struct {
	name  string
	lines [][]byte
	errs  []error
}

// errAt records an error at node n's position.
func (p *parser) errAt(n *yaml.Node, format string, args ...any) {
	line, col := 1, 1
	if n != nil && n.Line > 0 {
		line, col = n.Line, n.Column
	}
	p.errAtPos(line, col, fmt.Sprintf(format, args...))
}

func (p *parser) errAtPos(line, col int, msg string) {
	// yaml.v3 can place an implicit node just past the end of the file.
	if n := len(p.lines); n > 0 && line > n {
		line, col = n, len(p.lines[n-1])+1
	}
	if len(p.errs) == maxErrors {
		p.errs = append(p.errs, &Error{File: p.name, Line: line, Column: col, Msg: "too many errors; stopping here"})
	}
	if len(p.errs) > maxErrors {
		return
	}
	p.errs = append(p.errs, &Error{File: p.name, Line: line, Column: col, Msg: msg})
}

// durationPattern is the one spelling of a duration, as in schema.json.
var durationPattern = regexp.MustCompile(`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`)

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// decodeYAML parses data into its single document's root node. Syntax
// errors are reported with the line yaml.v3 gives and the column where
// that line's content (or its first tab) starts: yaml.v3 reports no column.
func (p *parser) decodeYAML(data []byte) *yaml.Node {
	p.lines = bytes.Split(data, []byte("\n"))
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := dec.Decode(&doc)
	if errors.Is(err, io.EOF) {
		p.errAtPos(1, 1, "the file is empty: expected a mapping with experiment, about and rules")
		return nil
	}
	if err != nil {
		p.syntaxError(err)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		at := &extra
		if len(extra.Content) > 0 {
			at = extra.Content[0]
		}
		p.errAt(at, "a second YAML document: a rule file holds exactly one")
		return nil
	} else if !errors.Is(err, io.EOF) {
		p.syntaxError(err)
		return nil
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		p.errAtPos(1, 1, "the file is empty: expected a mapping with experiment, about and rules")
		return nil
	}
	return doc.Content[0]
}

// parserProblems are yaml.v3's messages that come from its parser rather
// than its scanner. For them yaml.v3 reports the 0-based line of the
// construct it was parsing (a known off-by-one); for scanner errors the
// 1-based line.
var parserProblems = []string{
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected '-' indicator",
	"did not find expected <document start>",
	"did not find expected <stream-start>",
	"did not find expected key",
	"did not find expected node content",
	"found undefined tag handle",
	"found duplicate %TAG directive",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
}

// syntaxError turns a yaml.v3 syntax error into an Error. yaml.v3 gives
// only the line of the construct it was parsing, so the column is
// inferred: a tab in indentation is found exactly; an unclosed { or [ is
// pointed at; otherwise the column is where the line's text starts.
func (p *parser) syntaxError(err error) {
	msg := err.Error()
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	if slices.Contains(parserProblems, msg) {
		line++
	}
	line = min(max(line, 1), len(p.lines))
	if strings.Contains(msg, "tab character") || msg == "found character that cannot start any token" {
		for l := line; l <= len(p.lines); l++ {
			text := p.lines[l-1]
			lead := len(text) - len(bytes.TrimLeft(text, " \t"))
			if i := bytes.IndexByte(text[:lead], '\t'); i >= 0 {
				p.errAtPos(l, i+1, "YAML syntax: a tab in the indentation: YAML indents with spaces")
				return
			}
		}
	}
	text := p.lines[line-1]
	col := len(text) - len(bytes.TrimLeft(text, " ")) + 1
	for _, open := range []struct {
		problem string
		bracket byte
	}{{"did not find expected ',' or '}'", '{'}, {"did not find expected ',' or ']'", '['}} {
		if msg == open.problem {
			if i := bytes.IndexByte(text, open.bracket); i >= 0 {
				col = i + 1
				msg += fmt.Sprintf(": the %c here is never closed", open.bracket)
			}
		}
	}
	p.errAtPos(line, col, "YAML syntax: "+msg)
}

// deref follows aliases.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// found describes a node for "found ..." in messages.
func found(n *yaml.Node) string {
	n = deref(n)
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "nothing"
		case "!!int", "!!float":
			return "the number " + n.Value
		case "!!bool":
			return n.Value
		}
		return strconv.Quote(n.Value)
	}
	return "a YAML " + n.Tag
}

// kv is one key and its value in a mapping.
type kv struct {
	key  string
	k, v *yaml.Node
}

// mapping checks that n is a mapping whose keys are all in keys (reporting
// unknown ones with a did-you-mean hint, and duplicates) and returns its
// pairs in order. what names the mapping in messages. hint, when not nil,
// may explain an unknown key better (e.g. one that belongs elsewhere).
func (p *parser) mapping(n *yaml.Node, what string, keys []string, hint func(string) string) ([]kv, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		p.errAt(n, "%s: expected a mapping, found %s", what, found(n))
		return nil, false
	}
	var out []kv
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errAt(k, "%s: expected a key, found %s", what, found(k))
			continue
		}
		key := k.Value
		known := false
		for _, c := range keys {
			if c == key {
				known = true
				break
			}
		}
		if !known {
			h := ""
			if hint != nil {
				h = hint(key)
			}
			if h == "" {
				h = didYouMean(key, keys)
			}
			if h == "" {
				h = "; expected one of " + strings.Join(keys, ", ")
			}
			p.errAt(k, "unknown key %q in %s%s", key, what, h)
			continue
		}
		if seen[key] {
			p.errAt(k, "%s: key %q appears twice", what, key)
			continue
		}
		seen[key] = true
		out = append(out, kv{key: key, k: k, v: v})
	}
	return out, true
}

// isNull reports whether n is absent or an explicit null.
func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// str returns n as a non-empty string.
func (p *parser) str(n *yaml.Node, what string) (string, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		p.errAt(n, "%s: expected a string, found %s", what, found(n))
		return "", false
	}
	if strings.TrimSpace(n.Value) == "" {
		p.errAt(n, "%s: expected a string, found an empty one", what)
		return "", false
	}
	return n.Value, true
}

// word returns n as a string whatever YAML resolved it to (a name like
// "80" or "true" still reads as a word).
func (p *parser) scalar(n *yaml.Node, what, expected string) (string, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		p.errAt(n, "%s: expected %s, found %s", what, expected, found(n))
		return "", false
	}
	return n.Value, true
}

// integer returns n as an integer in [lo, hi].
func (p *parser) integer(n *yaml.Node, what string, lo, hi int64) (int64, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		p.errAt(n, "%s: expected a whole number, found %s", what, found(n))
		return 0, false
	}
	var v int64
	if err := n.Decode(&v); err != nil {
		p.errAt(n, "%s: expected a whole number from %d to %d, found %s", what, lo, hi, found(n))
		return 0, false
	}
	if v < lo || v > hi {
		p.errAt(n, "%s: expected a whole number from %d to %d, found %d", what, lo, hi, v)
		return 0, false
	}
	return v, true
}

// unsigned returns n as an unsigned 64-bit integer.
func (p *parser) unsigned(n *yaml.Node, what string) (uint64, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		p.errAt(n, "%s: expected a whole number, found %s", what, found(n))
		return 0, false
	}
	var v uint64
	if err := n.Decode(&v); err != nil {
		p.errAt(n, "%s: expected a whole number from 0 to %d, found %s", what, uint64(math.MaxUint64), found(n))
		return 0, false
	}
	return v, true
}

// boolean returns n as true or false.
func (p *parser) boolean(n *yaml.Node, what string) (bool, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		p.errAt(n, "%s: expected true or false, found %s", what, found(n))
		return false, false
	}
	var v bool
	if err := n.Decode(&v); err != nil {
		p.errAt(n, "%s: expected true or false, found %s", what, found(n))
		return false, false
	}
	return v, true
}

// duration returns n as a duration in [0, max].
func (p *parser) duration(n *yaml.Node, what string, max time.Duration) (time.Duration, bool) {
	n = deref(n)
	if n != nil && n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!int" || n.ShortTag() == "!!float") {
		p.errAt(n, "%s: expected a duration with a unit such as %sms, found the number %s", what, n.Value, n.Value)
		return 0, false
	}
	s, ok := p.scalar(n, what, "a duration such as 300ms")
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	if err != nil || !durationPattern.MatchString(s) {
		p.errAt(n, "%s: expected a duration such as 300ms or 1.5s, found %q", what, s)
		return 0, false
	}
	if d < 0 || d > max {
		p.errAt(n, "%s: expected a duration from 0 to %v, found %v", what, max, d)
		return 0, false
	}
	return d, true
}

// items returns the elements of a list, or n itself when it is a single
// scalar.
func items(n *yaml.Node) []*yaml.Node {
	n = deref(n)
	if n == nil {
		return nil
	}
	if n.Kind == yaml.SequenceNode {
		out := make([]*yaml.Node, len(n.Content))
		for i, c := range n.Content {
			out[i] = deref(c)
		}
		return out
	}
	return []*yaml.Node{n}
}
