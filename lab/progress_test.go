package lab

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/closeduel/closeduel/analysis"
)

func TestProgressLine(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	p := &progress{start: start, plan: 48 * time.Second, quiet: 30 * time.Second,
		stats: func() (analysis.LiveCounts, map[string]uint64) {
			return analysis.LiveCounts{Segments: 120, Connections: 14, Duels: 3, OngoingDuels: 1, IgnoredRSTs: 9}, map[string]uint64{"pass": 118, "drop": 2}
		}}
	p.request(true)
	p.request(true)
	p.request(false)
	tests := []struct {
		name string
		stop time.Time
		now  time.Time
		want string
	}{
		{name: "client running", now: start.Add(12 * time.Second),
			want: " 12.0s elapsed,  36.0s left (client running) | requests 2 ok 1 failed | segments 120 | verdicts: drop 2, pass 118 | connections 14 | duels 3 (1 ongoing)"},
		{name: "watching", stop: start.Add(20 * time.Second), now: start.Add(25 * time.Second),
			want: " 25.0s elapsed,  25.0s left (watching) | requests 2 ok 1 failed | segments 120 | verdicts: drop 2, pass 118 | connections 14 | duels 3 (1 ongoing)"},
		{name: "past the end", stop: start.Add(20 * time.Second), now: start.Add(60 * time.Second),
			want: " 60.0s elapsed,   0.0s left (watching) | requests 2 ok 1 failed | segments 120 | verdicts: drop 2, pass 118 | connections 14 | duels 3 (1 ongoing)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.stop(tt.stop)
			if got := p.line(tt.now); got != tt.want {
				t.Errorf("line:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestProgressSaysNothingWithoutATerminal(t *testing.T) {
	p := &progress{start: time.Now(), stats: func() (analysis.LiveCounts, map[string]uint64) { return analysis.LiveCounts{}, nil }}
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	began := time.Now()
	p.run(ctx) // w is nil: not a terminal
	if took := time.Since(began); took > 100*time.Millisecond {
		t.Errorf("without a terminal run should return at once, took %v", took)
	}
	var b bytes.Buffer
	p.w = &b
	ctx2, cancel2 := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel2()
	p.run(ctx2)
	if !bytes.Contains(b.Bytes(), []byte("no middlebox")) || !bytes.HasSuffix(b.Bytes(), []byte("\n")) {
		t.Errorf("on a terminal the line should be drawn and ended with a newline, got %q", b.String())
	}
}
