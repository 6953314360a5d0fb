package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func runCmd(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	app := newApp()
	var out, errOut bytes.Buffer
	app.Writer, app.ErrWriter, app.Reader = &out, &errOut, strings.NewReader(stdin)
	err = app.RunContext(context.Background(), append([]string{"closeduel"}, args...))
	return out.String(), errOut.String(), err
}

func TestCheckDescribesAValidFile(t *testing.T) {
	out, errOut, err := runCmd(t, "", "check", "../../rules/testdata/sketch.yaml")
	if err != nil || errOut != "" {
		t.Fatalf("check: %v, stderr %q", err, errOut)
	}
	want := `../../rules/testdata/sketch.yaml: experiment lost-final-ack: Drop the laptop's ACK of the device's FIN once per connection; does the device's FIN retransmission meet Linux RSTs?
  watches TCP between client 192.168.100.1 and device 192.168.100.99 on port 80; random choices are seeded with 42
  drop-final-ack: drops the 1st ACK from client that acknowledges device's FIN, in each connection
  slow-client-fin: delays each segment with FIN from client by 250ms ± 50ms (uniformly distributed)
  fin-to-rst: rewrites each segment with FIN from device: flags become RST+ACK (disabled until enabled at run time)
`
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
}

func TestCheckReportsEveryErrorWithPositionAndExits1(t *testing.T) {
	out, errOut, err := runCmd(t, "experiment: x\n", "check",
		"../../rules/testdata/broken/misspelt-action.yaml", "simultaneous-close", "../../rules/testdata/broken/two-errors.yaml", "-", "no-such-file.yaml")
	if code := exitCode(err); code != 1 {
		t.Errorf("exit status %d (%v), want 1", code, err)
	}
	if err == nil || err.Error() != "check: 4 of 5 rule files have errors" {
		t.Errorf("error %v", err)
	}
	want := []string{
		`rules: ../../rules/testdata/broken/misspelt-action.yaml:7:9: do: unknown action "dorp" (did you mean "drop"?); expected one of pass, drop, delay, duplicate, rewrite, inject, hold-until-next, log-only`,
		`rules: ../../rules/testdata/broken/two-errors.yaml:7:15: when: device: unknown state "time-wiat" (did you mean "time-wait"?); expected one of closed, listen, syn-sent, syn-received, established, fin-wait-1, fin-wait-2, close-wait, closing, last-ack, time-wait`,
		`rules: ../../rules/testdata/broken/two-errors.yaml:8:7: unknown key "form" in when (did you mean "from"?)`,
		`rules: stdin:1:1: missing about: a rule file needs experiment, about and rules`,
		`rules: stdin:1:1: missing rules: a rule file needs experiment, about and rules`,
		`rules: open no-such-file.yaml: no such file or directory`,
	}
	if diff := cmp.Diff(want, strings.Split(strings.TrimSpace(errOut), "\n")); diff != "" {
		t.Errorf("stderr (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(out, "library/simultaneous-close.yaml: experiment simultaneous-close:") {
		t.Errorf("the valid file among them was not described:\n%s", out)
	}
}

func TestCheckNeedsAFile(t *testing.T) {
	if _, _, err := runCmd(t, "", "check"); exitCode(err) != 2 {
		t.Errorf("check without files: %v (status %d), want status 2", err, exitCode(err))
	}
}

func TestRulesListsTheLibraryAndPrintsOne(t *testing.T) {
	out, _, err := runCmd(t, "", "rules")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 9 {
		t.Fatalf("%d experiments listed, want at least 9:\n%s", len(lines), out)
	}
	for _, name := range []string{"observe-only", "lost-final-ack", "delayed-final-ack", "lost-device-fin", "device-fin-to-rst",
		"client-rst-lost", "simultaneous-close", "reused-tuple", "ack-storm"} {
		found := false
		for _, l := range lines {
			if strings.HasPrefix(l, name+" ") && len(strings.TrimSpace(strings.TrimPrefix(l, name))) > 20 {
				found = true
			}
		}
		if !found {
			t.Errorf("experiment %s is not listed with its about line", name)
		}
	}
	out, _, err = runCmd(t, "", "rules", "lost-device-fin")
	if err != nil || !strings.HasPrefix(out, "experiment: lost-device-fin\n") {
		t.Errorf("rules lost-device-fin: %v\n%s", err, out)
	}
	_, _, err = runCmd(t, "", "rules", "lost-devise-fin")
	if err == nil || !strings.Contains(err.Error(), `did you mean "lost-device-fin"?`) {
		t.Errorf("rules with a misspelt name: %v", err)
	}
}
