package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/closeduel/closeduel/analysis"
)

const (
	churnPcap = "../../analysis/testdata/linux-clean-churn.pcap"
	lostPcap  = "../../analysis/testdata/linux-lost-final-ack.pcap"
	twPcap    = "../../analysis/testdata/linux-time-wait-reuse.pcap"
)

func runAnalyze(t *testing.T, args ...string) (string, error) {
	t.Helper()
	app := newApp()
	var out bytes.Buffer
	app.Writer, app.ErrWriter = &out, &out
	err := app.RunContext(context.Background(), append([]string{"closeduel", "analyze"}, args...))
	return out.String(), err
}

func TestAnalyzeText(t *testing.T) {
	out, err := runAnalyze(t, twPcap)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"duels                                   1", "syn-to-held-tuple", "SkRSTkRSTkRSTkRSTkRSTkR", "TIME_WAIT reuses                        1"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestAnalyzeJSONAndHTML(t *testing.T) {
	dir := t.TempDir()
	html := filepath.Join(dir, "r.html")
	out, err := runAnalyze(t, "--json", "--html", html, lostPcap)
	if err != nil {
		t.Fatal(err)
	}
	var r analysis.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if r.Schema != analysis.SchemaVersion || r.Totals.Connections != 10 || r.Totals.Closes["fin-rst"] != 10 {
		t.Errorf("schema %q connections %d fin-rst %d; want %q 10 10", r.Schema, r.Totals.Connections, r.Totals.Closes["fin-rst"], analysis.SchemaVersion)
	}
	page, err := os.ReadFile(html)
	if err != nil || !bytes.Contains(page, []byte("<svg class=\"timeline\"")) {
		t.Errorf("html report: %v, timeline present %v", err, bytes.Contains(page, []byte("timeline")))
	}
}

func TestAnalyzeRunDir(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile(twPcap)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "capture.pcap"), b, 0o644)
	// The workload ended one second into the duel.
	os.WriteFile(filepath.Join(dir, "run.yaml"), []byte("experiment: tw-reuse\nworkload_start: 2026-11-24T04:26:19Z\nworkload_end: 2026-11-24T04:26:20.582386Z\n"), 0o644)
	out, err := runAnalyze(t, "--json", "--run", dir)
	if err != nil {
		t.Fatal(err)
	}
	var r analysis.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Run == nil || r.Run.Experiment != "tw-reuse" || len(r.Duels) != 1 || r.Duels[0].AfterWorkload == nil || !*r.Duels[0].AfterWorkload {
		t.Fatalf("run %+v duels %+v", r.Run, r.Duels)
	}
	if got := r.Duels[0].AfterWorkloadSeconds; got < 5.0 || got > 5.2 {
		t.Errorf("after workload %.3fs, want about 5.11s", got)
	}
}

func TestAnalyzeCompare(t *testing.T) {
	out, err := runAnalyze(t, "--compare", churnPcap, lostPcap)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"connections  20  10  -10 (x0.50)", "clean closes  20   0  -20", "close fin-rst   0  10  +10"} {
		if !strings.Contains(strings.Join(strings.Fields(out), "  "), strings.Join(strings.Fields(want), "  ")) {
			t.Errorf("compare output lacks %q:\n%s", want, out)
		}
	}
	out, err = runAnalyze(t, "--compare", "--json", churnPcap, lostPcap)
	if err != nil {
		t.Fatal(err)
	}
	var c analysis.Comparison
	if err := json.Unmarshal([]byte(out), &c); err != nil || c.Schema != analysis.CompareSchemaVersion || c.A.Totals.Connections != 20 || c.B.Totals.Connections != 10 {
		t.Errorf("compare json: %v %q", err, c.Schema)
	}
}

func TestAnalyzeUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{nil, 2, "give capture or log files"},
		{[]string{"--compare", churnPcap}, 2, "two arguments"},
		{[]string{"no-such-file.pcap"}, 1, "no-such-file.pcap"},
	} {
		_, err := runAnalyze(t, tc.args...)
		if err == nil || exitCode(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%v: err %v (exit %d), want exit %d and %q", tc.args, err, exitCode(err), tc.code, tc.msg)
		}
	}
}
