package lab

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/closeduel/closeduel/analysis"
)

// WriteReport writes a run's report: the analysis the run fed
// (Result.Analysis) first, then the lab's section (WriteSummaryReport).
// It is the report when Config.Report is nil.
func WriteReport(w io.Writer, r *Result) error {
	if r.Analysis != nil {
		if err := analysis.WriteText(w, r.Analysis, analysis.TextOptions{}); err != nil {
			return fmt.Errorf("lab: report: %w", err)
		}
		if _, err := io.WriteString(w, "\n"); err != nil {
			return fmt.Errorf("lab: report: %w", err)
		}
	}
	return WriteSummaryReport(w, r)
}

// WriteSummaryReport writes the lab's section of a report: what only the
// lab knows. The run's settings, the workload's figures, the segments
// after the client stopped, the device's last status and the middlebox's
// verdicts by action. Connections, closes, duels, ignored RSTs and
// TIME_WAIT reuses are the analysis' (WriteReport writes both).
func WriteSummaryReport(w io.Writer, r *Result) error {
	rec := &r.Record
	var b strings.Builder
	b.WriteString("LAB\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	row := func(label, format string, args ...any) {
		fmt.Fprintf(tw, "  %s\t%s\n", label, fmt.Sprintf(format, args...))
	}
	row("run", "%s, experiment %s", r.Dir, rec.Experiment)
	busy := ""
	if rec.Device.BusyClose {
		busy = ", busy at close: takes in no ACK of its FIN"
	}
	row("device", "%s (close %s, size %d, pool %d, TIME_WAIT %s%s)",
		rec.Device.Kind, rec.Device.Close, rec.Device.Size, rec.Device.Pool, rec.Device.TimeWait, busy)
	ports := ""
	if rec.Workload.PortRange != "" {
		ports = ", client ports " + rec.Workload.PortRange
	}
	row("workload", "schedule %s (%d requests), concurrency %d, client close %s, quiet %s%s",
		rec.Workload.Schedule, rec.Workload.Requests, rec.Workload.Concurrency, rec.Workload.ClientClose, rec.Workload.Quiet, ports)
	res := &rec.Results
	row("requests", "%d ok, %d failed, %d late", res.RequestsOK, res.RequestsFailed, res.RequestsLate)
	row("schedule errors", "largest start %s, largest gap %s; on the wire to the device %s; %d segments out of order on the bridge",
		orDash(res.MaxStartError), orDash(res.MaxGapError), orDash(res.WireGapError), res.OutOfOrder)
	if r.Summary != nil && !r.Summary.Stop().IsZero() {
		after := "none"
		if n, last := r.Summary.AfterStop(); n > 0 {
			after = fmt.Sprintf("%d, the last %.3f s after", n, last.Seconds())
		}
		row("segments after the client stopped", "%s", after)
	}
	if st := r.DeviceStatus; st.Event == "status" {
		var kills []string
		for k, n := range st.PoolKilled {
			if n > 0 {
				kills = append(kills, fmt.Sprintf("%s %d", k, n))
			}
		}
		sort.Strings(kills)
		pool := ""
		if len(kills) > 0 {
			pool = "; pool killed " + strings.Join(kills, ", ")
		}
		if st.BusyDropped > 0 {
			pool += fmt.Sprintf("; did not take in %d ACKs of its FIN", st.BusyDropped)
		}
		row("device at the end", "%d accepted, %d responses, %d closed, %d aborted, %d reset by the client; %d active pcbs, %d in TIME_WAIT%s",
			st.Accepted, st.Responses, st.Closed, st.Aborted, st.ResetByPeer, st.Active, st.TimeWait, pool)
	}
	if rec.Inline {
		var v []string
		for action, n := range res.Verdicts {
			v = append(v, fmt.Sprintf("%s %d", action, n))
		}
		sort.Strings(v)
		if len(v) == 0 {
			v = []string{"none"}
		}
		rules := rec.Rules
		if rules == "" {
			rules = "observe only"
		}
		row("middlebox", "%s; verdicts by action: %s", rules, strings.Join(v, ", "))
	} else {
		row("middlebox", "none (bench without the inline engine)")
	}
	if line := r.ExpectationLine(); line != "" {
		row("expectation ("+rec.Device.Kind.String()+")", "%s", line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
