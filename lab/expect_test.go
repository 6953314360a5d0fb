package lab

import (
	"testing"

	"github.com/closeduel/closeduel/analysis"
)

func TestExpectations(t *testing.T) {
	r := &Result{Analysis: &analysis.Report{Totals: analysis.Totals{Duels: 2, DuelsAfterWorkload: 1, RSTs: 7}}}
	r.Record.Results.RequestsOK, r.Record.Results.RequestsFailed = 4, 1
	r.DeviceStatus = DeviceEvent{Event: "status", PoolKilled: map[string]int{"active": 2, "time_wait": 1}}
	for _, c := range []struct {
		name string
		exp  []Expectation
		met  bool
		line string
	}{
		{"met", []Expectation{{Figure: "duels", Lo: 1, Hi: 65535, Want: "> 0"}, {Figure: "pool-kills", Lo: 3, Hi: 3, Want: "== 3"}},
			true, "met: duels 2 (want > 0), pool-kills 3 (want == 3)"},
		{"one not met", []Expectation{{Figure: "duels", Lo: 1, Hi: 65535, Want: "> 0"}, {Figure: "requests-failed", Lo: 0, Hi: 0, Want: "== 0"}},
			false, "NOT MET: requests-failed 1 (want == 0)"},
		{"unknown figure", []Expectation{{Figure: "segments-after-stop", Lo: 0, Hi: 0, Want: "== 0"}},
			false, "NOT MET: segments-after-stop unknown (want == 0)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r.check(c.exp)
			if got := r.Record.ExpectationMet; got == nil || *got != c.met {
				t.Errorf("ExpectationMet = %v, want %v", got, c.met)
			}
			if got := r.ExpectationLine(); got != c.line {
				t.Errorf("line %q, want %q", got, c.line)
			}
		})
	}
	r.check(nil)
	if r.Record.ExpectationMet != nil || r.ExpectationLine() != "" {
		t.Error("a run without expectations says something about them")
	}
}
