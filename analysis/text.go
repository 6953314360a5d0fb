package analysis

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// TextOptions shape the terminal report.
type TextOptions struct {
	// MaxRows bounds each table (default 20); the rest is counted.
	MaxRows int
	// AllConnections lists every connection row kept, not only those that
	// did not close cleanly.
	AllConnections bool
}

// WriteText writes the report as tables for a terminal.
func WriteText(w io.Writer, r *Report, opt TextOptions) error {
	if opt.MaxRows <= 0 {
		opt.MaxRows = 20
	}
	ew := &errWriter{w: w}
	for _, in := range r.Inputs {
		ew.printf("input  %s (%s%s): %d records, %d segments, %d skipped, role %s\n",
			in.Path, in.Format, optional(", ", in.LinkType), in.Records, in.Segments, in.Skipped, in.Role)
		if len(in.SkippedBy) > 0 {
			ew.printf("       skipped: %s\n", countList(in.SkippedBy))
		}
		if len(in.Via) > 0 {
			ew.printf("       segments via: %s\n", countList(in.Via))
		}
		for _, wmsg := range in.Warnings {
			ew.printf("       warning: %s\n", wmsg)
		}
	}
	if r.Run != nil {
		ew.printf("run    %s", r.Run.Dir)
		if r.Run.Experiment != "" {
			ew.printf(" experiment %s", r.Run.Experiment)
		}
		if !r.Run.WorkloadEnd.IsZero() {
			ew.printf(" workload %s .. %s", fmtTime(r.Run.WorkloadStart), fmtTime(r.Run.WorkloadEnd))
		}
		ew.printf("\n")
	}
	if !r.First.IsZero() {
		ew.printf("span   %s .. %s (%s)\n", fmtTime(r.First), fmtTime(r.Last), fmtDur(r.Last.Sub(r.First)))
	}
	if !r.InferredWorkloadEnd.IsZero() {
		ew.printf("workload end (inferred: the client's last new connection) %s\n", fmtTime(r.InferredWorkloadEnd))
	}
	if r.Totals.EvictedTuples > 0 {
		ew.printf("warning: %d tuples forgotten early to stay within %d (--max-tuples): what followed on them counts as new connections\n",
			r.Totals.EvictedTuples, r.Settings.MaxTuples)
	}
	ew.printf("\n")
	writeTotals(ew, r)
	ew.printf("\n")
	writeDuels(ew, r, opt)
	ew.printf("\n")
	writeConnections(ew, r, opt)
	return ew.err
}

func writeTotals(ew *errWriter, r *Report) {
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	ew.printf("TOTALS\n")
	for _, row := range totalRows(r) {
		fmt.Fprintf(tw, "  %s\t%s\n", row[0], row[1])
	}
	tw.Flush()
}

// totalRows lists the totals as label/value pairs, in the order every
// output shows them.
func totalRows(r *Report) [][2]string {
	t := &r.Totals
	closes := make([]string, 0, len(t.Closes))
	for _, k := range closeKindNames {
		closes = append(closes, fmt.Sprintf("%s %d", k, t.Closes[k]))
	}
	rows := [][2]string{
		{"connections", fmt.Sprint(t.Connections)},
		{"clean closes", fmt.Sprint(t.CleanCloses)},
		{"closes", strings.Join(closes, ", ")},
		{"failed requests", fmt.Sprint(t.FailedRequests)},
		{"connection time p50 / p99", fmtSec(t.ConnTimeP50) + " / " + fmtSec(t.ConnTimeP99)},
		{"duels", fmt.Sprint(t.Duels)},
		{"segments in duels", fmt.Sprint(t.DuelSegments)},
		{"seconds in duels", fmtSec(t.DuelSeconds)},
		{afterLabel(r), fmt.Sprint(t.DuelsAfterWorkload)},
		{"segments", fmt.Sprint(t.Segments)},
		{"retransmissions (SYN, FIN)", fmt.Sprintf("%d (%d, %d)", t.Retransmissions, t.SYNRetransmissions, t.FINRetransmissions)},
		{"RSTs (ignored)", fmt.Sprintf("%d (%d)", t.RSTs, t.IgnoredRSTs)},
		{"TIME_WAIT reuses", fmt.Sprint(t.TimeWaitReuses)},
		{"verdicts (drops), injected, duplicates", fmt.Sprintf("%d (%d), %d, %d", t.Verdicts, t.Drops, t.Injected, t.Duplicates)},
	}
	if t.EvictedTuples > 0 {
		rows = append(rows, [2]string{"tuples forgotten early (evicted)", fmt.Sprint(t.EvictedTuples)})
	}
	return rows
}

func writeDuels(ew *errWriter, r *Report, opt TextOptions) {
	ew.printf("DUELS (%d)\n", r.Totals.Duels)
	if len(r.Duels) == 0 {
		ew.printf("  none\n")
		return
	}
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  #\ttuple\tstart\tduration\tsegs\torig>resp\tresp>orig\tcause\ttrigger\tafter wl\tverdicts\n")
	for i, d := range r.Duels {
		if i == opt.MaxRows {
			fmt.Fprintf(tw, "  ... %d more\n", len(r.Duels)-i)
			break
		}
		after := "-"
		if d.AfterWorkload != nil {
			after = "no"
			if *d.AfterWorkload {
				after = "yes " + fmtSec(d.AfterWorkloadSeconds)
			}
			if !r.InferredWorkloadEnd.IsZero() {
				after += " (inferred)"
			}
		}
		dur := fmtSec(d.Duration)
		if d.Ongoing {
			dur += "+"
		}
		fmt.Fprintf(tw, "  %d\t%s > %s\t%s\t%s\t%d\t%s\t%s\t%s\t%s %s\t%s\t%s\n",
			d.ID, d.Orig, d.Resp, fmtTime(d.Start), dur, d.Segments,
			fmtCounts(&d.ByDirection[0]), fmtCounts(&d.ByDirection[1]), d.Cause,
			d.Trigger.Dir, d.Trigger.Flags, after, fmtVerdicts(&d.Verdicts))
	}
	tw.Flush()
	if r.DuelsOmitted > 0 {
		ew.printf("  (%d duels not listed)\n", r.DuelsOmitted)
	}
}

func writeConnections(ew *errWriter, r *Report, opt TextOptions) {
	rows := make([]*Connection, 0, len(r.Connections))
	for i := range r.Connections {
		c := &r.Connections[i]
		if opt.AllConnections || !c.Clean {
			rows = append(rows, c)
		}
	}
	what := "CONNECTIONS that did not close cleanly"
	if opt.AllConnections {
		what = "CONNECTIONS"
	}
	ew.printf("%s (%d of %d)\n", what, len(rows), r.Totals.Connections)
	if len(rows) == 0 {
		ew.printf("  none\n")
		return
	}
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  id\torig > resp\tstart\tduration\tclose\tcloser\tsegs\tretx\trst(ign)\tflags\thistory\n")
	for i, c := range rows {
		if i == opt.MaxRows {
			fmt.Fprintf(tw, "  ... %d more\n", len(rows)-i)
			break
		}
		var flags []string
		if c.TimeWaitReuse {
			flags = append(flags, "tw-reuse")
		}
		if c.Failed {
			flags = append(flags, "failed")
		}
		if c.Duels > 0 {
			flags = append(flags, "duel")
		}
		fmt.Fprintf(tw, "  %d\t%s > %s\t%s\t%s\t%s\t%s\t%d/%d\t%d\t%d(%d)\t%s\t%s\n",
			c.ID, c.Orig, c.Resp, fmtTime(c.Start), fmtSec(c.Duration), c.Close, c.Closer,
			c.Segments[0], c.Segments[1], c.Retransmissions, c.RSTs, c.IgnoredRSTs,
			optional("", strings.Join(flags, ",")), c.History)
	}
	tw.Flush()
	if r.ConnectionsOmitted > 0 {
		ew.printf("  (%d connections not kept)\n", r.ConnectionsOmitted)
	}
}

func fmtCounts(fc *FlagCounts) string {
	var parts []string
	for _, p := range []struct {
		n    int
		name string
	}{{fc.SYN, "SYN"}, {fc.SYNACK, "SYN+ACK"}, {fc.ACK, "ACK"}, {fc.Data, "data"}, {fc.FIN, "FIN"}, {fc.RST, "RST"}} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.name))
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func fmtVerdicts(v *VerdictCounts) string {
	if v.Total == 0 {
		return "-"
	}
	s := fmt.Sprintf("%d", v.Total)
	if v.Dropped > 0 {
		s += fmt.Sprintf(" (%d dropped)", v.Dropped)
	}
	rules := make([]string, 0, len(v.ByRule))
	for k := range v.ByRule {
		rules = append(rules, k)
	}
	sort.Strings(rules)
	for _, k := range rules {
		s += fmt.Sprintf(" %s:%d", k, v.ByRule[k])
	}
	return s
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("15:04:05.000000")
}

func fmtSec(s Seconds) string { return fmtDur(s.Duration()) }

func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.3fs", d.Seconds())
	}
}

// optional returns prefix+s, or "" for an empty s with a prefix and "-"
// for an empty s without one.
func optional(prefix, s string) string {
	if s == "" {
		if prefix == "" {
			return "-"
		}
		return ""
	}
	return prefix + s
}

// errWriter remembers the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) {
	fmt.Fprintf(e, format, args...)
}

// countList renders counts by name as "a 3, b 1", largest first.
func countList(m map[string]int) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		if m[names[i]] != m[names[j]] {
			return m[names[i]] > m[names[j]]
		}
		return names[i] < names[j]
	})
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", n, m[n])
	}
	return b.String()
}

// afterLabel names the duels-after-workload total, saying when the
// workload's end was inferred.
func afterLabel(r *Report) string {
	if !r.InferredWorkloadEnd.IsZero() {
		return "duels after workload (inferred end)"
	}
	return "duels after workload"
}
