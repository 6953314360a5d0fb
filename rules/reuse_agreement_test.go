package rules

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/closeduel/closeduel/analysis"
	"github.com/closeduel/closeduel/internal/capturetest"
	"github.com/closeduel/closeduel/nfq"
	"github.com/closeduel/closeduel/segment"
)

// reuseProbe marks every segment the rules' reuses-tuple condition holds for.
const reuseProbe = `experiment: reuse-probe
about: Marks the segments of every incarnation that reuses its tuple.
rules:
  - name: reuse
    when: { reuses-tuple: true }
    do: log-only
`

// TestRulesAndReportAgreeOnReuse: the rules' reuses-tuple and the
// analysis's time_wait_reuses are one definition (the tracker's). On every
// lab capture in ../analysis/testdata, the incarnations whose SYNs the rule
// marks (one per tuple and initial sequence number) are as many as the
// report's TIME_WAIT reuses.
func TestRulesAndReportAgreeOnReuse(t *testing.T) {
	const testdata = "../analysis/testdata"
	paths, _ := filepath.Glob(filepath.Join(testdata, "*.pcap*"))
	runs, _ := filepath.Glob(filepath.Join(testdata, "*", "capture.pcapng"))
	paths = append(paths, runs...)
	if len(paths) < 5 {
		t.Fatalf("only %d lab captures in %s", len(paths), testdata)
	}
	total := 0
	for _, p := range paths {
		t.Run(strings.TrimPrefix(p, testdata+"/"), func(t *testing.T) {
			r, err := analysis.Analyze(context.Background(), analysis.Config{}, []string{p})
			if err != nil {
				t.Fatal(err)
			}
			d := NewDecider(mustParse(t, reuseProbe), Options{})
			marked := map[string]bool{}
			replayCapture(t, p, func(pkt *nfq.Packet) {
				var dec nfq.Decision
				d.Decide(pkt, &dec)
				s := &pkt.Seg
				if dec.Rule == "reuse" && s.Flags&(segment.SYN|segment.ACK) == segment.SYN {
					k, _ := s.Tuple().Canonical()
					marked[fmt.Sprint(k, s.Seq)] = true
				}
			})
			if len(marked) != r.Totals.TimeWaitReuses {
				t.Errorf("reuses-tuple marks %d incarnations, the report counts %d TIME_WAIT reuses", len(marked), r.Totals.TimeWaitReuses)
			}
			total += len(marked)
		})
	}
	if total == 0 {
		t.Error("no capture has a reuse: the test cannot tell the definitions apart")
	}
}

// replayCapture hands every TCP segment of a capture to fn as the engine
// would, at its capture time.
func replayCapture(t *testing.T, path string, fn func(*nfq.Packet)) {
	t.Helper()
	for _, cs := range capturetest.Read(t, path) {
		fn(&nfq.Packet{Time: cs.At, Data: cs.Data, Seg: cs.Seg, TCP: true})
	}
}
