package rules

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Error is one problem found in a rule file, with where it is.
type Error struct {
	// File is the name the file was parsed under.
	File string
	// Line and Column are 1-based and point at the offending key or value.
	Line, Column int
	// Msg says what was found and what was expected.
	Msg string
}

// Error formats the problem as "rules: FILE:LINE:COL: MSG".
func (e *Error) Error() string {
	return fmt.Sprintf("rules: %s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

// Errors returns the *Error values err holds (one, or several joined), in
// file order; nil when it holds none.
func Errors(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if e, ok := err.(*Error); ok {
			out = append(out, e)
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		walk(errors.Unwrap(err))
	}
	walk(err)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Line != out[j].Line {
			return out[i].Line < out[j].Line
		}
		return out[i].Column < out[j].Column
	})
	return out
}

// maxErrors bounds the errors reported for one file.
const maxErrors = 25

// suggest returns the candidate closest to s when it is close enough to
// be a likely typo, else "".
func suggest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	ls := strings.ToLower(s)
	for _, c := range candidates {
		d := editDistance(ls, strings.ToLower(c))
		if d < bestD {
			best, bestD = c, d
		}
	}
	limit := 2
	if len(s) <= 3 {
		limit = 1
	}
	if len(s) >= 9 {
		limit = 3
	}
	if bestD <= limit && bestD < len(s) {
		return best
	}
	// A prefix or a word order slip ("wait-time" for "time-wait").
	for _, c := range candidates {
		lc := strings.ToLower(c)
		if len(ls) >= 3 && (strings.HasPrefix(lc, ls) || strings.HasPrefix(ls, lc)) {
			return c
		}
		if sameWords(ls, lc) {
			return c
		}
	}
	return ""
}

// didYouMean renders a suggestion hint, or "" when there is none.
func didYouMean(s string, candidates []string) string {
	if c := suggest(s, candidates); c != "" {
		return fmt.Sprintf(" (did you mean %q?)", c)
	}
	return ""
}

func sameWords(a, b string) bool {
	split := func(s string) []string {
		f := strings.FieldsFunc(s, func(r rune) bool { return r == '-' || r == '_' || r == ' ' })
		sort.Strings(f)
		return f
	}
	fa, fb := split(a), split(b)
	if len(fa) < 2 || len(fa) != len(fb) {
		return false
	}
	for i := range fa {
		if fa[i] != fb[i] {
			return false
		}
	}
	return true
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and transpositions of adjacent letters.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
