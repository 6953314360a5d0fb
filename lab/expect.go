package lab

import (
	"fmt"
	"strings"
	"time"
)

// Setting is one bench setting of a run and where its value came from:
// "default", a rule file's lab: section ("library/x.yaml:12:7"), or
// "flag". run.yaml records every one.
type Setting struct {
	Key    string `yaml:"key" json:"key"`
	Value  string `yaml:"value" json:"value"`
	Source string `yaml:"source" json:"source"`
}

// Expectation is one figure a run should show: a line of a rule file's
// expect: section for the run's device.
type Expectation struct {
	// Figure names the figure (Result.Figure).
	Figure string
	// Lo and Hi bound it, both included; Want says the bound in words
	// ("> 0", "== 0").
	Lo, Hi int
	Want   string
}

// ExpectResult is an Expectation checked against a run.
type ExpectResult struct {
	Figure string `yaml:"figure" json:"figure"`
	Want   string `yaml:"want" json:"want"`
	// Value is the run's figure; Known is false when the run has no
	// such figure (no analysis, say).
	Value int  `yaml:"value" json:"value"`
	Known bool `yaml:"known" json:"known"`
	Met   bool `yaml:"met" json:"met"`
}

// String says the check and its outcome: "duels 2 (want > 0): met".
func (e ExpectResult) String() string {
	v := "unknown"
	if e.Known {
		v = fmt.Sprint(e.Value)
	}
	verdict := "met"
	if !e.Met {
		verdict = "NOT MET"
	}
	return fmt.Sprintf("%s %s (want %s): %s", e.Figure, v, e.Want, verdict)
}

// Figure returns one of the run's figures by the name an expect: section
// uses (rules.ExpectFigures); ok is false for an unknown name or a figure
// the run does not have.
func (r *Result) Figure(name string) (v int, ok bool) {
	rec := &r.Record.Results
	switch name {
	case "requests-ok":
		return rec.RequestsOK, true
	case "requests-failed":
		return rec.RequestsFailed, true
	case "segments-after-stop":
		if r.Summary == nil {
			return 0, false
		}
		n, _ := r.Summary.AfterStop()
		return n, true
	case "last-after-stop-s":
		if r.Summary == nil {
			return 0, false
		}
		_, last := r.Summary.AfterStop()
		return int(last / time.Second), true
	case "busy-dropped":
		if r.DeviceStatus.Event != "status" {
			return 0, false
		}
		return r.DeviceStatus.BusyDropped, true
	case "pool-kills":
		if r.DeviceStatus.Event != "status" {
			return 0, false
		}
		for _, n := range r.DeviceStatus.PoolKilled {
			v += n
		}
		return v, true
	}
	if r.Analysis == nil {
		return 0, false
	}
	t := &r.Analysis.Totals
	switch name {
	case "duels":
		return t.Duels, true
	case "duels-after-workload":
		return t.DuelsAfterWorkload, true
	case "duel-segments":
		return t.DuelSegments, true
	case "rsts":
		return t.RSTs, true
	case "ignored-rsts":
		return t.IgnoredRSTs, true
	case "fin-retransmissions":
		return t.FINRetransmissions, true
	case "syn-retransmissions":
		return t.SYNRetransmissions, true
	case "time-wait-reuses":
		return t.TimeWaitReuses, true
	case "drops":
		return t.Drops, true
	}
	return 0, false
}

// LongestDuel returns the longest duel's duration (0 without one).
func (r *Result) LongestDuel() time.Duration {
	var d time.Duration
	if r.Analysis != nil {
		for i := range r.Analysis.Duels {
			d = max(d, r.Analysis.Duels[i].Duration.Duration())
		}
	}
	return d
}

// OngoingAfterStop counts the duels still going when the inputs ended
// that went on after the client stopped: seen going on at the end of the
// quiet period.
func (r *Result) OngoingAfterStop() int {
	n := 0
	if r.Analysis != nil {
		for i := range r.Analysis.Duels {
			d := &r.Analysis.Duels[i]
			if d.Ongoing && d.AfterWorkload != nil && *d.AfterWorkload {
				n++
			}
		}
	}
	return n
}

// check checks the run against exp and records the outcome.
func (r *Result) check(exp []Expectation) {
	rec := &r.Record
	rec.Expect = rec.Expect[:0]
	if len(exp) == 0 {
		rec.ExpectationMet = nil
		return
	}
	all := true
	for _, e := range exp {
		v, ok := r.Figure(e.Figure)
		met := ok && v >= e.Lo && v <= e.Hi
		all = all && met
		rec.Expect = append(rec.Expect, ExpectResult{Figure: e.Figure, Want: e.Want, Value: v, Known: ok, Met: met})
	}
	rec.ExpectationMet = &all
}

// ExpectationLine says whether the run met its expectation, with the
// figures that decided: the unmet ones when any, else all. It is "" when
// the run had no expectation.
func (r *Result) ExpectationLine() string {
	rec := &r.Record
	if rec.ExpectationMet == nil {
		return ""
	}
	var parts []string
	for _, e := range rec.Expect {
		if *rec.ExpectationMet || !e.Met {
			v := "unknown"
			if e.Known {
				v = fmt.Sprint(e.Value)
			}
			parts = append(parts, fmt.Sprintf("%s %s (want %s)", e.Figure, v, e.Want))
		}
	}
	verdict := "met"
	if !*rec.ExpectationMet {
		verdict = "NOT MET"
	}
	return verdict + ": " + strings.Join(parts, ", ")
}
