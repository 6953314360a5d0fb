package verdictlog

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

var stringSeeds = []string{
	"", "plain", `quote " and backslash \`, "tab\tnewline\nreturn\r", "nul\x00 bell\x07 esc\x1b del\x7f",
	"ü é ∑ 😀", "bad \xff byte", "cut \xe2\x82", "surrogate \xed\xa0\x80", "<html>&amp;", "\u2028\u2029",
}

// checkString is the property appendString must have: it yields one valid
// JSON string that decodes to what encoding/json's own encoding of s
// decodes to (invalid UTF-8 becomes U+FFFD byte by byte).
func checkString(t *testing.T, s string) {
	got := appendString([]byte("x"), s)
	if got[0] != 'x' {
		t.Fatalf("appendString clobbered the buffer: %q", got)
	}
	enc := got[1:]
	if !utf8.Valid(enc) {
		t.Fatalf("appendString(%q) = %q is not valid UTF-8", s, enc)
	}
	var back string
	if err := json.Unmarshal(enc, &back); err != nil {
		t.Fatalf("appendString(%q) = %s: %v", s, enc, err)
	}
	ref, _ := json.Marshal(s)
	var want string
	if err := json.Unmarshal(ref, &want); err != nil {
		t.Fatal(err)
	}
	if back != want {
		t.Fatalf("appendString(%q) = %s decodes to %q, want %q", s, enc, back, want)
	}
	if utf8.ValidString(s) && !strings.ContainsAny(s, "\"\\") && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 }) {
		if string(enc) != `"`+s+`"` {
			t.Fatalf("appendString(%q) = %s, want it unescaped", s, enc)
		}
	}
}

func TestAppendString(t *testing.T) {
	for _, s := range stringSeeds {
		t.Run(s, func(t *testing.T) { checkString(t, s) })
	}
	// The exact escapes, as SCHEMA.md promises.
	got := string(appendString(nil, "a\"b\\c\nd\te\x01f\xffg<"))
	if want := `"a\"b\\c\nd\te\u0001f\ufffdg<"`; got != want {
		t.Errorf("appendString = %s, want %s", got, want)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range stringSeeds {
		f.Add(s)
	}
	f.Fuzz(checkString)
}

// checkWord is the property of comment words: one word, one line, valid
// UTF-8, "-" for nothing, and unchanged when nothing needed replacing.
func checkWord(t *testing.T, s string) {
	got := string(appendWord(nil, s))
	if s == "" {
		if got != "-" {
			t.Fatalf("appendWord(\"\") = %q, want \"-\"", got)
		}
		return
	}
	if !utf8.ValidString(got) || strings.ContainsFunc(got, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		t.Fatalf("appendWord(%q) = %q: not one clean word", s, got)
	}
	clean := utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f })
	if clean && got != s {
		t.Fatalf("appendWord(%q) = %q, want it unchanged", s, got)
	}
	if utf8.ValidString(s) && utf8.RuneCountInString(got) != utf8.RuneCountInString(s) {
		t.Fatalf("appendWord(%q) = %q changed the number of characters", s, got)
	}
}

func TestAppendWord(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "-"}, {"client>device", "client>device"}, {"window 0 -> 1024", "window_0_->_1024"},
		{"a\tb\nc", "a_b_c"}, {"ü\xff", "ü\uFFFD"},
	} {
		if got := string(appendWord(nil, tc.in)); got != tc.want {
			t.Errorf("appendWord(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, s := range stringSeeds {
		checkWord(t, s)
	}
}

func FuzzAppendWord(f *testing.F) {
	for _, s := range stringSeeds {
		f.Add(s)
	}
	f.Fuzz(checkWord)
}

// TestSummaryKeysEscaped checks that a caller's counter name that needs
// escaping still yields valid JSON.
func TestSummaryKeysEscaped(t *testing.T) {
	line := appendSummary(nil, 5, []string{"a\"b", "z"}, map[string]uint64{"a\"b": 1, "z": 2}, 3, 4)
	var got map[string]any
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	want := map[string]any{"v": 1.0, "kind": "summary", "t": 5.0, "a\"b": 1.0, "z": 2.0, "lost": 3.0, "failed": 4.0}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
}
