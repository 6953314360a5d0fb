package bench

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/closeduel/closeduel/rules"
	"github.com/closeduel/closeduel/topology"
)

// TestRuleFilesAreValid checks that the rule files the bench writes load,
// that the 20-rule file has 20 rules and needs only the headers (so the
// mode measures rule evaluation, not a whole-packet copy), and that the
// delay file asks for DelayAsked.
func TestRuleFilesAreValid(t *testing.T) {
	dir := t.TempDir()
	topo := &topology.Topology{Config: topology.Config{ClientAddr: netip.MustParsePrefix("192.168.100.1/24"), DeviceAddr: netip.MustParsePrefix("192.168.100.99/24")}}
	if err := writeRuleFiles(dir, topo); err != nil {
		t.Fatal(err)
	}
	twenty, err := rules.Parse(twentyRulesFile, mustRead(t, filepath.Join(dir, twentyRulesFile)))
	if err != nil {
		t.Fatal(err)
	}
	if len(twenty.Rules) != 20 || twenty.NeedsWholePacket() {
		t.Errorf("%d rules, needs the whole packet %v; want 20 that need only headers", len(twenty.Rules), twenty.NeedsWholePacket())
	}
	delay, err := rules.Parse(delayRulesFile, mustRead(t, filepath.Join(dir, delayRulesFile)))
	if err != nil {
		t.Fatal(err)
	}
	if desc := strings.Join(delay.Describe(), "\n"); !strings.Contains(desc, DelayAsked.String()) {
		t.Errorf("delay file says %q, want a delay of %v", desc, DelayAsked)
	}
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDelayErrorsReadsTheRulesVerdicts(t *testing.T) {
	log := `{"v":1,"kind":"start","t":1}
{"v":1,"kind":"verdict","t":2,"rule":"delay-data","action":"delay","delay":2100000}
{"v":1,"kind":"verdict","t":3,"action":"pass","delay":0}
{"v":1,"kind":"verdict","t":4,"rule":"delay-data","action":"delay","delay":1990000}
{"v":1,"kind":"summary","t":5,"lost":0,"failed":0}
`
	name := filepath.Join(t.TempDir(), "d.jsonl")
	if err := os.WriteFile(name, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := delayErrors(name, "delay-data", 2*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != 100*time.Microsecond || got[1] != -10*time.Microsecond {
		t.Errorf("errors %v, want [100µs -10µs]", got)
	}
}
