package analysis

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// Comparison sets two reports side by side, for A/B tests of a rule or a
// mitigation.
type Comparison struct {
	Schema string  `json:"schema"`
	A      *Report `json:"a"`
	B      *Report `json:"b"`
	// Figures are the compared totals, in display order.
	Figures []Figure `json:"figures"`
}

// CompareSchemaVersion names the JSON layout of a Comparison.
const CompareSchemaVersion = "closeduel.compare/v1"

// Figure is one total in both reports.
type Figure struct {
	Name string  `json:"name"`
	A    float64 `json:"a"`
	B    float64 `json:"b"`
	// Change is B-A; Ratio is B/A (0 when A is 0).
	Change float64 `json:"change"`
	Ratio  float64 `json:"ratio"`
	// Unit is "" for counts, "s" for seconds.
	Unit string `json:"unit,omitempty"`
}

// Compare builds the comparison of a and b.
func Compare(a, b *Report) *Comparison {
	c := &Comparison{Schema: CompareSchemaVersion, A: a, B: b}
	av, bv := figures(&a.Totals), figures(&b.Totals)
	for i := range av {
		f := Figure{Name: av[i].name, A: av[i].v, B: bv[i].v, Change: bv[i].v - av[i].v, Unit: av[i].unit}
		if f.A != 0 {
			f.Ratio = f.B / f.A
		}
		c.Figures = append(c.Figures, f)
	}
	return c
}

type namedValue struct {
	name string
	v    float64
	unit string
}

func figures(t *Totals) []namedValue {
	n := func(name string, v int) namedValue { return namedValue{name, float64(v), ""} }
	s := func(name string, v Seconds) namedValue { return namedValue{name, float64(v), "s"} }
	out := []namedValue{
		n("connections", t.Connections),
		n("clean closes", t.CleanCloses),
	}
	for _, k := range closeKindNames {
		out = append(out, n("close "+k, t.Closes[k]))
	}
	return append(out,
		n("failed requests", t.FailedRequests),
		s("connection time p50", t.ConnTimeP50),
		s("connection time p99", t.ConnTimeP99),
		n("duels", t.Duels),
		n("segments in duels", t.DuelSegments),
		s("seconds in duels", t.DuelSeconds),
		n("duels after workload", t.DuelsAfterWorkload),
		n("segments", t.Segments),
		n("retransmissions", t.Retransmissions),
		n("SYN retransmissions", t.SYNRetransmissions),
		n("FIN retransmissions", t.FINRetransmissions),
		n("RSTs", t.RSTs),
		n("ignored RSTs", t.IgnoredRSTs),
		n("TIME_WAIT reuses", t.TimeWaitReuses),
		n("verdicts", t.Verdicts),
		n("drops", t.Drops),
	)
}

// FormatValue renders a figure's value.
func (f *Figure) FormatValue(v float64) string {
	if f.Unit == "s" {
		return fmtSec(Seconds(v))
	}
	return fmt.Sprintf("%.0f", v)
}

// FormatChange renders the change, with the ratio when there is one.
func (f *Figure) FormatChange() string {
	if f.Change == 0 {
		return "="
	}
	s := fmt.Sprintf("%+.0f", f.Change)
	if f.Unit == "s" {
		s = "+" + fmtSec(Seconds(f.Change))
		if f.Change < 0 {
			s = "-" + fmtSec(Seconds(-f.Change))
		}
	}
	if f.Ratio != 0 {
		s += fmt.Sprintf(" (x%.2f)", f.Ratio)
	}
	return s
}

// WriteCompareText writes the comparison as a table.
func WriteCompareText(w io.Writer, c *Comparison) error {
	ew := &errWriter{w: w}
	ew.printf("A: %s\nB: %s\n\n", inputNames(c.A), inputNames(c.B))
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "figure\tA\tB\tchange\t\n")
	for i := range c.Figures {
		f := &c.Figures[i]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", f.Name, f.FormatValue(f.A), f.FormatValue(f.B), f.FormatChange())
	}
	tw.Flush()
	return ew.err
}

func inputNames(r *Report) string {
	s := ""
	for i, in := range r.Inputs {
		if i > 0 {
			s += ", "
		}
		s += in.Path
	}
	if r.Run != nil && r.Run.Experiment != "" {
		s += " (experiment " + r.Run.Experiment + ")"
	}
	return s
}
