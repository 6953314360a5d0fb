package rules

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// head is a valid start of a file: lines 1 to 4.
const head = `experiment: t
about: A test.
hosts: { client: 192.168.100.1, device: 192.168.100.99 }
rules:
`

func positions(err error) []string {
	var out []string
	for _, e := range Errors(err) {
		out = append(out, fmt.Sprintf("%d:%d: %s", e.Line, e.Column, e.Msg))
	}
	return out
}

type brokenCase struct {
	name string
	src  string
	want []string
}

// brokenSources returns the sources of the broken examples (the fuzz seed
// corpus holds them).
func brokenSources() []string {
	var out []string
	for _, c := range brokenCases {
		out = append(out, c.src)
	}
	return out
}

func TestBrokenFilesReportLineAndColumn(t *testing.T) {
	for _, tc := range brokenCases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse("t.yaml", []byte(tc.src))
			if err == nil {
				t.Fatalf("Parse accepted the file: %v", f.Describe())
			}
			if f != nil {
				t.Errorf("Parse returned a File with its error")
			}
			if diff := cmp.Diff(tc.want, positions(err)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "rules: t.yaml:") {
					t.Errorf("error line %q does not start with rules: FILE:", line)
				}
			}
		})
	}
}

// brokenCases are malformed files and the errors check must report.
var brokenCases = []brokenCase{
	{"misspelt action", head + `  - name: a
    do: dorp
`, []string{`6:9: do: unknown action "dorp" (did you mean "drop"?); expected one of pass, drop, delay, duplicate, rewrite, inject, hold-until-next, log-only`}},
	{"misspelt rule key", head + `  - name: a
    whne: { from: client }
    do: drop
`, []string{`6:5: unknown key "whne" in rule (did you mean "when"?)`}},
	{"misspelt condition", head + `  - name: a
    when: { from: client, flag: ACK }
    do: drop
`, []string{`6:27: unknown key "flag" in when (did you mean "flags"?)`}},
	{"misspelt state", head + `  - name: a
    when:
      device: time-wiat
    do: drop
`, []string{`7:15: when: device: unknown state "time-wiat" (did you mean "time-wait"?); expected one of closed, listen, syn-sent, syn-received, established, fin-wait-1, fin-wait-2, close-wait, closing, last-ack, time-wait`}},
	{"state words swapped", head + `  - name: a
    when: { client: wait-time }
    do: drop
`, []string{`6:21: when: client: unknown state "wait-time" (did you mean "time-wait"?); expected one of closed, listen, syn-sent, syn-received, established, fin-wait-1, fin-wait-2, close-wait, closing, last-ack, time-wait`}},
	{"bad address", `experiment: t
about: A test.
hosts: { client: 192.168.100.1, device: 192.168.100.999 }
rules: []
`, []string{`3:41: hosts: device: expected an address such as 192.168.100.99 or a prefix such as 192.168.100.0/24, found "192.168.100.999"`}},
	{"one role only", `experiment: t
about: A test.
hosts:
  device: 10.0.0.1
rules: []
`, []string{`4:3: hosts: expected both client and device, found 1 of them`}},
	{"overlapping roles", `experiment: t
about: A test.
hosts: { client: 10.0.0.0/8, device: 10.1.1.1 }
rules: []
`, []string{`3:8: hosts: client 10.0.0.0/8 and device 10.1.1.1/32 overlap: a segment's direction would be ambiguous`}},
	{"missing about and rules", `experiment: t
`, []string{
		`1:1: missing about: a rule file needs experiment, about and rules`,
		`1:1: missing rules: a rule file needs experiment, about and rules`,
	}},
	{"rules left empty", `experiment: t
about: A test.
rules:
`, []string{`3:7: rules: expected a list of rules, found nothing (write rules: [] for an experiment that only observes)`}},
	{"rules not a list", `experiment: t
about: A test.
rules: { name: a }
`, []string{`3:8: rules: expected a list of rules, found a mapping`}},
	{"duplicate rule names", head + `  - name: a
    do: drop
  - name: a
    do: pass
`, []string{`7:5: rules: a second rule named "a": names must be unique`}},
	{"role without hosts", `experiment: t
about: A test.
rules:
  - name: a
    when: { from: client }
    do: drop
`, []string{`5:19: when: from: client is a role, but the file has no hosts: saying which address plays it`}},
	{"state without hosts", `experiment: t
about: A test.
rules:
  - name: a
    when: { device: time-wait }
    do: drop
`, []string{`5:13: when: device: the file has no hosts: saying which address is the device`}},
	{"FIN count without hosts", `experiment: t
about: A test.
rules:
  - name: a
    when: { device-fins: 1 }
    do: drop
`, []string{`5:13: when: device-fins: the file has no hosts: saying which address is the device`}},
	{"FIN count not a count", head + `  - name: a
    when: { client-fins: once }
    do: drop
`, []string{`6:26: when: client-fins: expected a count such as 0, >0, <=100 or 1..100, found "once"`}},
	{"tab indentation", "experiment: t\nabout: A test.\nrules:\n  - name: a\n\tdo: drop\n", []string{
		`5:1: YAML syntax: a tab in the indentation: YAML indents with spaces`}},
	{"tab after spaces", "experiment: t\nabout: A test.\nrules:\n  - name: a\n    do: drop\n  \t\n  - name: b\n", []string{
		`6:3: YAML syntax: a tab in the indentation: YAML indents with spaces`}},
	{"indentation slip", head + `  - name: a
   do: drop
`, []string{`5:3: YAML syntax: did not find expected '-' indicator`}},
	{"unclosed flow mapping", head + `  - name: a
    when: { from: client
    do: drop
`, []string{`6:11: YAML syntax: did not find expected ',' or '}': the { here is never closed`}},
	{"nth is not a number", head + `  - name: a
    when: { nth: first }
    do: drop
`, []string{`6:18: when: nth: expected a whole number, found "first"`}},
	{"nth zero", head + `  - name: a
    when: { nth: 0 }
    do: drop
`, []string{`6:18: when: nth: expected a whole number from 1 to 2147483648, found 0`}},
	{"probability above one", head + `  - name: a
    when: { probability: 1.5 }
    do: drop
`, []string{`6:26: when: probability: expected a probability from 0 to 1 (or 0% to 100%), found the number 1.5`}},
	{"jitter larger than delay", head + `  - name: a
    do: { delay: 100ms, jitter: 200ms }
`, []string{`6:33: do: jitter (200ms) is larger than the delay (100ms): a uniform delay cannot go below zero`}},
	{"delay without unit", head + `  - name: a
    do: { delay: 300 }
`, []string{`6:18: do: delay: expected a duration with a unit such as 300ms, found the number 300`}},
	{"two actions", head + `  - name: a
    do: { drop: true, delay: 1s }
`, []string{`6:23: do: one action per rule, found drop and delay`}},
	{"parameter of another action", head + `  - name: a
    do: { delay: 1s, gap: 1ms }
`, []string{`6:22: do: gap is not a parameter of delay`}},
	{"condition under do", head + `  - name: a
    do: { drop: , from: client }
`, []string{`6:19: unknown key "from" in do (from is a condition: put it under when:)`}},
	{"action beside when", head + `  - name: a
    drop: true
`, []string{
		`5:5: rule a: missing do: the action to take`,
		`6:5: unknown key "drop" in rule (drop is an action: write do: drop)`,
	}},
	{"acks the wrong way", head + `  - name: a
    when: { from: device, acks: device-fin }
    do: drop
`, []string{`6:27: when: acks: device-fin matches only segments from the client, but from: excludes it`}},
	{"empty payload range", head + `  - name: a
    when: { payload: "5..2" }
    do: drop
`, []string{`6:22: when: payload: the range "5..2" is empty`}},
	{"flag in lower case", head + `  - name: a
    when: { flags: rst+ack }
    do: drop
`, []string{`6:20: when: flags: unknown flag "rst" (did you mean "RST"?); expected FIN, SYN, RST, PSH, ACK, URG, ECE, CWR`}},
	{"state in RFC spelling", head + `  - name: a
    when: { device: TIME_WAIT }
    do: drop
`, []string{`6:21: when: device: unknown state "TIME_WAIT" (did you mean "time-wait"?); expected one of closed, listen, syn-sent, syn-received, established, fin-wait-1, fin-wait-2, close-wait, closing, last-ack, time-wait`}},
	{"unknown flag", head + `  - name: a
    when: { has: [FNI, ACK] }
    do: drop
`, []string{`6:19: when: has: unknown flag "FNI" (did you mean "FIN"?); expected FIN, SYN, RST, PSH, ACK, URG, ECE, CWR`}},
	{"exact flags with has", head + `  - name: a
    when: { flags: ACK, has: [FIN] }
    do: drop
`, []string{`6:13: when: flags gives the exact set of flags; has, any and none cannot be combined with it`}},
	{"has and none overlap", head + `  - name: a
    when: { has: [FIN], none: [FIN, RST] }
    do: drop
`, []string{`6:11: when: has and none both name FIN: the rule could never match`}},
	{"duplicate key", head + `  - name: a
    do: drop
    do: pass
`, []string{`7:5: rule: key "do" appears twice`}},
	{"empty rewrite", head + `  - name: a
    do: { rewrite: {} }
`, []string{`6:20: rewrite: expected at least one of flags, set, clear, seq, ack, window, strip-options, repair-checksum`}},
	{"relative seq of zero", head + `  - name: a
    do: { rewrite: { seq: +0 } }
`, []string{`6:27: rewrite: seq: expected a number such as 12345, or +1000 / -1 relative to the segment's own (a relative change from -2147483648 to +2147483647, not 0), found "+0"`}},
	{"inject without toward", head + `  - name: a
    do: { inject: { flags: RST } }
`, []string{`6:19: inject: missing toward`}},
	{"inject toward misspelt", head + `  - name: a
    do: { inject: { flags: RST, toward: devcie } }
`, []string{`6:41: inject: toward: expected one of client, device, sender, receiver, found "devcie" (did you mean "device"?)`}},
	{"inject a SYN", head + `  - name: a
    do: { inject: { flags: SYN, toward: device } }
`, []string{`6:28: inject: flags: expected RST, ACK or FIN (with ACK or PSH), found SYN`}},
	{"second document", `experiment: t
about: A test.
rules: []
---
experiment: u
`, []string{`5:1: a second YAML document: a rule file holds exactly one`}},
	{"empty file", ``, []string{`1:1: the file is empty: expected a mapping with experiment, about and rules`}},
	{"bad experiment name", `experiment: Lost Final
about: A test.
rules: []
`, []string{`1:13: experiment: expected a name of lower-case letters, digits and dashes, found "Lost Final"`}},
	{"condition at top level", `experiment: t
about: A test.
when: { from: client }
rules: []
`, []string{`3:1: unknown key "when" in the file (when belongs inside a rule, under rules:)`}},
	{"until before after", head + `  - name: a
    when: { after: 10s, until: 5s }
    do: drop
`, []string{`6:11: when: until (5s) must come after after (10s): the rule could never match`}},
	{"counting in a release condition", head + `  - name: a
    do: { hold-until-next: { from: client, nth: 2 } }
`, []string{`6:44: unknown key "nth" in hold-until-next (nth cannot say when a held segment is released)`}},
	{"negative seed", `experiment: t
about: A test.
seed: -1
rules: []
`, []string{`3:7: seed: expected a whole number from 0 to 18446744073709551615, found the number -1`}},
	{"port out of range", `experiment: t
about: A test.
ports: [80, 70000]
rules: []
`, []string{`3:13: ports: expected a whole number from 1 to 65535, found 70000`}},
	{"unknown stack", `experiment: t
about: A test.
hosts: { client: 10.0.0.1, device: 10.0.0.2 }
stacks: { device: lwpi }
rules: []
`, []string{`4:19: stacks: device: unknown stack "lwpi" (did you mean "lwip"?); expected one of rfc9293, linux, lwip`}},
	{"distribution misspelt", head + `  - name: a
    do: { delay: 100ms, jitter: 10ms, distribution: nromal }
`, []string{`6:53: do: distribution: expected one of uniform, normal, exponential, found "nromal" (did you mean "normal"?)`}},
	{"several errors at once", head + `  - name: a
    when: { form: client }
    do: drop
  - name: B
    do: dorp
`, []string{
		`6:13: unknown key "form" in when (did you mean "from"?)`,
		`8:11: name: expected lower-case letters, digits and dashes, found "B"`,
		`9:9: do: unknown action "dorp" (did you mean "drop"?); expected one of pass, drop, delay, duplicate, rewrite, inject, hold-until-next, log-only`,
	}},
}
