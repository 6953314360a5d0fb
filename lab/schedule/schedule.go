// Package schedule holds the lab workload's rhythm: the gaps between
// request starts, and the one spelling of them that flags, rule files
// and run records use ("10x1s,40x200ms"). It needs no privileges.
package schedule

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Schedule is the workload's list of gaps: request i+1 starts Gaps[i] after
// request i (start to start). A schedule of n gaps issues n+1 requests.
type Schedule []time.Duration

// Default is the original bench's rhythm cut to fit a two-minute
// run: 10 gaps of 1 s, then 40 of 0.2 s (51 requests in 18 s).
const Default = "10x1s,40x200ms"

// Parse parses a comma-separated list of gaps, each a Go duration
// optionally preceded by a repeat count: "10x1s,40x200ms", "1s,1s,500ms".
func Parse(s string) (Schedule, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("schedule: empty (want e.g. %q)", Default)
	}
	var out Schedule
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		n := 1
		if count, gap, ok := strings.Cut(part, "x"); ok {
			v, err := strconv.Atoi(count)
			if err != nil || v < 1 {
				return nil, fmt.Errorf("schedule: %q: bad repeat count %q", s, count)
			}
			n, part = v, gap
		}
		d, err := time.ParseDuration(part)
		if err != nil {
			return nil, fmt.Errorf("schedule: %q: %w", s, err)
		}
		if d < 0 {
			return nil, fmt.Errorf("schedule: %q: negative gap %s", s, d)
		}
		if len(out)+n > 1_000_000 {
			return nil, fmt.Errorf("schedule: %q: more than a million gaps", s)
		}
		for range n {
			out = append(out, d)
		}
	}
	return out, nil
}

// Requests returns how many requests the schedule issues.
func (s Schedule) Requests() int { return len(s) + 1 }

// Duration returns the time from the first request to the last.
func (s Schedule) Duration() time.Duration {
	var total time.Duration
	for _, g := range s {
		total += g
	}
	return total
}

// Offsets returns when each request starts, relative to the first.
func (s Schedule) Offsets() []time.Duration {
	out := make([]time.Duration, 0, len(s)+1)
	var at time.Duration
	out = append(out, 0)
	for _, g := range s {
		at += g
		out = append(out, at)
	}
	return out
}

// String renders the schedule in the compact form Parse reads,
// runs of equal gaps folded: "10x1s,40x200ms".
func (s Schedule) String() string {
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] == s[i] {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if j-i > 1 {
			fmt.Fprintf(&b, "%dx", j-i)
		}
		b.WriteString(s[i].String())
		i = j
	}
	return b.String()
}

// MarshalText implements encoding.TextMarshaler.
func (s Schedule) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Schedule) UnmarshalText(b []byte) (err error) {
	*s, err = Parse(string(b))
	return err
}
