package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/closeduel/closeduel/rules"
	"github.com/closeduel/closeduel/verdictlog"
)

const ctlRules = `experiment: ctl-test
about: switching mitigations
hosts: { client: 192.168.100.1, device: 192.168.100.99 }
mitigations: { final-ack-repair: on }
rules: []
`

// TestCtlMitigation: `ctl mitigation NAME on|off` switches the Decider's
// mitigation, says so, logs a mitigation record for each switch (and none
// for a switch that changes nothing), and a reload switches to the file's.
func TestCtlMitigation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.yaml")
	if err := os.WriteFile(path, []byte(ctlRules), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := rules.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := rules.NewDecider(f, rules.Options{})
	logPath := filepath.Join(dir, "v.jsonl")
	vlog, err := verdictlog.Open(verdictlog.Config{JSONPath: logPath})
	if err != nil {
		t.Fatal(err)
	}
	logMitigationsOn(vlog, d)
	c := &controller{decider: d, vlog: vlog, path: path, ctx: context.Background(), log: slog.New(slog.DiscardHandler)}
	for _, step := range []struct {
		args []string
		want string
	}{
		{[]string{"mitigation", "timewait-guard", "on"}, "mitigation timewait-guard on"},
		{[]string{"mitigation", "timewait-guard", "on"}, "mitigation timewait-guard was on already"},
		{[]string{"mitigation", "timewait-guard", "off"}, "mitigation timewait-guard off"},
		{[]string{"mitigation", "duel-quench", "on"}, "mitigation duel-quench on"},
		{[]string{"reload"}, "; mitigation duel-quench off"},
	} {
		out, err := c.handle(step.args)
		if err != nil || !strings.Contains(out, step.want) {
			t.Fatalf("%v: %q, %v; want %q", step.args, out, err, step.want)
		}
	}
	if _, err := c.handle([]string{"mitigation", "timewait-gaurd", "on"}); err == nil || !strings.Contains(err.Error(), `did you mean "timewait-guard"`) {
		t.Errorf("misspelt name: %v", err)
	}
	out, err := c.handle([]string{"rules"})
	if err != nil || !strings.Contains(out, "on  mitigation final-ack-repair") || !strings.Contains(out, "off mitigation timewait-guard") {
		t.Errorf("rules: %q, %v; want every mitigation with its state", out, err)
	}
	if err := vlog.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, `"kind":"mitigation"`) {
			i := strings.Index(l, `"name"`)
			got = append(got, l[i:])
		}
	}
	want := []string{
		`"name":"final-ack-repair","on":true}`,
		`"name":"timewait-guard","on":true}`,
		`"name":"timewait-guard","on":false}`,
		`"name":"duel-quench","on":true}`,
		`"name":"duel-quench","on":false}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("mitigation records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
