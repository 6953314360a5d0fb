package lab

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// WriteSummaryReport writes the lab's own report: the run's settings in
// one paragraph, the workload's figures, the bridge summary, the device's
// last status and the middlebox's verdicts. The analysis report replaces it
// through Config.Report.
func WriteSummaryReport(w io.Writer, r *Result) error {
	rec := &r.Record
	var b strings.Builder
	fmt.Fprintf(&b, "closeduel lab: %s (run directory %s)\n", rec.Experiment, r.Dir)
	fmt.Fprintf(&b, "device %s (close %s, size %d, pool %d, TIME_WAIT %s); schedule %s (%d requests), concurrency %d, quiet %s\n",
		rec.Device.Kind, rec.Device.Close, rec.Device.Size, rec.Device.Pool, rec.Device.TimeWait,
		rec.Workload.Schedule, rec.Workload.Requests, rec.Workload.Concurrency, rec.Workload.Quiet)
	if rec.Workload.PortRange != "" {
		fmt.Fprintf(&b, "client ports %s\n", rec.Workload.PortRange)
	}
	res := &rec.Results
	fmt.Fprintf(&b, "requests: %d ok, %d failed, %d late; largest start error %s, largest gap error %s\n",
		res.RequestsOK, res.RequestsFailed, res.RequestsLate, res.MaxStartError, res.MaxGapError)
	if r.Summary != nil {
		if _, err := r.Summary.WriteTo(&b); err != nil {
			return err
		}
	}
	if st := r.DeviceStatus; st.Event == "status" {
		fmt.Fprintf(&b, "device at the end: %d accepted, %d responses, %d closed, %d aborted, %d reset by the client; %d active pcbs, %d in TIME_WAIT",
			st.Accepted, st.Responses, st.Closed, st.Aborted, st.ResetByPeer, st.Active, st.TimeWait)
		if len(st.PoolKilled) > 0 {
			var kills []string
			for k, n := range st.PoolKilled {
				if n > 0 {
					kills = append(kills, fmt.Sprintf("%s %d", k, n))
				}
			}
			sort.Strings(kills)
			if len(kills) > 0 {
				fmt.Fprintf(&b, "; pool killed %s", strings.Join(kills, ", "))
			}
		}
		b.WriteByte('\n')
	}
	if rec.Inline {
		var v []string
		for action, n := range res.Verdicts {
			v = append(v, fmt.Sprintf("%s %d", action, n))
		}
		sort.Strings(v)
		rules := rec.Rules
		if rules == "" {
			rules = "observe only"
		}
		fmt.Fprintf(&b, "middlebox (%s): verdicts %s\n", rules, strings.Join(v, ", "))
	} else {
		b.WriteString("middlebox: none (bench without the inline engine)\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
