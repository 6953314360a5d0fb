package rules

import (
	"encoding/json"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const labFile = `experiment: t
about: x
rules: []
lab:
  device: { close: wait, size: 64, pool: 8, time-wait: 2s }
  workload:
    schedule: 3x1s
    concurrency: 4
    client-close: eof
    timeout: 0s
    ports: 40000-40001
    random-ports: true
    linger0: false
  sysctls: { net.ipv4.tcp_rfc1337: 1, net.ipv4.tcp_tw_reuse: "0" }
  quiet: 20s
expect:
  lwip: { duels: ">0", duels-after-workload: ">=1" }
  linux: { duels: 0, requests-failed: "<=2" }
`

func TestLabSection(t *testing.T) {
	f, err := Parse("t.yaml", []byte(labFile))
	if err != nil {
		t.Fatal(err)
	}
	want := []LabSetting{
		{Key: "device.close", Flag: "close", Value: "wait", Line: 5, Column: 20},
		{Key: "device.size", Flag: "size", Value: "64", Line: 5, Column: 32},
		{Key: "device.pool", Flag: "pool", Value: "8", Line: 5, Column: 42},
		{Key: "device.time-wait", Flag: "time-wait", Value: "2s", Line: 5, Column: 56},
		{Key: "workload.schedule", Flag: "schedule", Value: "3x1s", Line: 7, Column: 15},
		{Key: "workload.concurrency", Flag: "concurrency", Value: "4", Line: 8, Column: 18},
		{Key: "workload.client-close", Flag: "client-close", Value: "eof", Line: 9, Column: 19},
		{Key: "workload.timeout", Flag: "timeout", Value: "0s", Line: 10, Column: 14},
		{Key: "workload.ports", Flag: "ports", Value: "40000-40001", Line: 11, Column: 12},
		{Key: "workload.random-ports", Flag: "random-ports", Value: "true", Line: 12, Column: 19},
		{Key: "workload.linger0", Flag: "linger0", Value: "false", Line: 13, Column: 14},
		{Key: "sysctls.net.ipv4.tcp_rfc1337", Flag: "sysctl", Value: "net.ipv4.tcp_rfc1337=1", Line: 14, Column: 36},
		{Key: "sysctls.net.ipv4.tcp_tw_reuse", Flag: "sysctl", Value: "net.ipv4.tcp_tw_reuse=0", Line: 14, Column: 62},
		{Key: "quiet", Flag: "quiet", Value: "20s", Line: 15, Column: 10},
	}
	if diff := cmp.Diff(want, f.Lab); diff != "" {
		t.Errorf("lab settings (-want +got):\n%s", diff)
	}
	wantExp := []Expectation{
		{Device: "lwip", Figure: "duels", Lo: 1, Hi: countMax, Line: 17, Column: 18},
		{Device: "lwip", Figure: "duels-after-workload", Lo: 1, Hi: countMax, Line: 17, Column: 46},
		{Device: "linux", Figure: "duels", Lo: 0, Hi: 0, Line: 18, Column: 19},
		{Device: "linux", Figure: "requests-failed", Lo: 0, Hi: 2, Line: 18, Column: 39},
	}
	if diff := cmp.Diff(wantExp, f.Expect); diff != "" {
		t.Errorf("expectations (-want +got):\n%s", diff)
	}
	var said []string
	for _, e := range f.ExpectFor("linux") {
		said = append(said, e.String())
	}
	if got := strings.Join(said, ", "); got != "duels == 0, requests-failed <= 2" {
		t.Errorf("linux expectations read %q", got)
	}
	if !f.Expect[0].Holds(3) || f.Expect[0].Holds(0) || !f.Expect[2].Holds(0) || f.Expect[2].Holds(1) {
		t.Error("Holds disagrees with the ranges")
	}
	desc := strings.Join(f.Describe(), "\n")
	for _, s := range []string{"lab (closeduel lab only; flags override): device.close wait,", "sysctls.net.ipv4.tcp_rfc1337 1", "expects on linux: duels == 0, requests-failed <= 2", "expects on lwip: duels > 0, duels-after-workload > 0"} {
		if !strings.Contains(desc, s) {
			t.Errorf("Describe lacks %q:\n%s", s, desc)
		}
	}
}

func TestLabSectionErrors(t *testing.T) {
	const base = "experiment: t\nabout: x\nrules: []\n"
	for _, c := range []struct{ name, src, want string }{
		{"unknown section", "lab:\n  devise: {}\n", `t.yaml:5:3: unknown key "devise" in lab (did you mean "device"?)`},
		{"unknown device key", "lab:\n  device: { pools: 3 }\n", `t.yaml:5:13: unknown key "pools" in lab: device (did you mean "pool"?)`},
		{"close word", "lab:\n  device: { close: clse }\n", `t.yaml:5:20: lab: device.close: unknown value "clse" (did you mean "close"?); expected one of close, wait, abort`},
		{"pool range", "lab:\n  device: { pool: -1 }\n", `t.yaml:5:19: lab: device.pool: expected a whole number from 0 to 100000, found -1`},
		{"schedule", "lab:\n  workload: { schedule: 3y1s }\n", `t.yaml:5:25: lab: workload.schedule: expected a schedule such as 10x1s,40x200ms, found "3y1s"`},
		{"ports", "lab:\n  workload: { ports: 80-90 }\n", `t.yaml:5:22: lab: workload.ports: expected a port range LOW-HIGH within 1024-65535 such as 40000-40001, found "80-90"`},
		{"quiet unit", "lab:\n  quiet: 30\n", `t.yaml:5:10: lab: quiet: expected a duration with a unit such as 30ms, found the number 30`},
		{"sysctl not net", "lab:\n  sysctls: { kernel.x: 1 }\n", `t.yaml:5:14: lab: sysctls: expected a network sysctl such as net.ipv4.tcp_rfc1337 (only net.* are per namespace), found "kernel.x"`},
		{"linger0 bool", "lab:\n  workload: { linger0: yes please }\n", `t.yaml:5:24: lab: workload.linger0: expected true or false, found "yes please"`},
		{"expect device", "expect:\n  esp: { duels: 0 }\n", `t.yaml:5:3: unknown key "esp" in expect; expected one of lwip, linux`},
		{"expect figure", "expect:\n  lwip: { duel: 0 }\n", `t.yaml:5:11: unknown key "duel" in expect: lwip (did you mean "duels"?)`},
		{"expect count", "expect:\n  lwip: { duels: lots }\n", `t.yaml:5:18: expect: lwip: duels: expected a count such as 0, >0, <=100 or 1..100, found "lots"`},
		{"expect empty", "expect:\n  lwip: {}\n", `t.yaml:5:9: expect: lwip: expected at least one figure such as duels: ">0"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(base+c.src))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error\n  %v\nwant it to contain\n  %s", err, c.want)
			}
		})
	}
}

// TestSchemaKnowsLabKeys keeps the schema's lab: and expect: sections and
// the parser's tables from drifting apart.
func TestSchemaKnowsLabKeys(t *testing.T) {
	data, err := os.ReadFile("schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var sch map[string]any
	if err := json.Unmarshal(data, &sch); err != nil {
		t.Fatal(err)
	}
	props := func(m any, path ...string) []string {
		for _, p := range path {
			m = m.(map[string]any)[p]
		}
		var out []string
		for k := range m.(map[string]any)["properties"].(map[string]any) {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	sorted := func(s []string) []string { s = slices.Clone(s); sort.Strings(s); return s }
	lab := sch["properties"].(map[string]any)["lab"]
	for _, c := range []struct {
		name      string
		want, got []string
	}{
		{"lab", sorted(labKeys), props(lab)},
		{"lab device", sorted(labSectionKeys("device")), props(lab, "properties", "device")},
		{"lab workload", sorted(labSectionKeys("workload")), props(lab, "properties", "workload")},
		{"expect", sorted(ExpectDevices), props(sch["properties"].(map[string]any)["expect"])},
		{"expectation", sorted(ExpectFigures), props(sch["$defs"].(map[string]any)["expectation"])},
	} {
		if diff := cmp.Diff(c.want, c.got); diff != "" {
			t.Errorf("%s keys (-parser +schema):\n%s", c.name, diff)
		}
	}
	s := compileSchema(t)
	if err := validateYAML(t, s, []byte(labFile)); err != nil {
		t.Errorf("the schema rejects a valid lab: section: %v", err)
	}
	for _, src := range []string{
		"experiment: t\nabout: x\nrules: []\nlab: { device: { close: clse } }\n",
		"experiment: t\nabout: x\nrules: []\nlab: { sysctls: { kernel.x: 1 } }\n",
		"experiment: t\nabout: x\nrules: []\nexpect: { lwip: { duel: 0 } }\n",
		"experiment: t\nabout: x\nrules: []\nexpect: { lwip: {} }\n",
	} {
		if _, err := Parse("t.yaml", []byte(src)); err == nil {
			t.Fatalf("Parse accepted:\n%s", src)
		}
		if err := validateYAML(t, s, []byte(src)); err == nil {
			t.Errorf("schema accepted what Parse rejects:\n%s", src)
		}
	}
}
