package analysis

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestSplitReport: switches at or before the first segment set the first
// phase's mitigations; later ones cut; connections and duels count in the
// phase they started in.
func TestSplitReport(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	r := &Report{
		First: at(0),
		Connections: []Connection{
			{Start: at(0.5), Clean: true},
			{Start: at(2), Failed: true, Duels: 1},
			{Start: at(2.5), Clean: true},
			{Start: at(5), Clean: true},
		},
		Duels: []Duel{{Start: at(2.1), Segments: 9, Duration: 1.5}},
	}
	log := `{"v":1,"kind":"start","t":1}
{"v":1,"kind":"mitigation","t":` + itoa64(at(-1).UnixNano()) + `,"name":"timewait-guard","on":true}
{"v":1,"kind":"verdict","t":2}
{"v":1,"kind":"mitigation","t":` + itoa64(at(1).UnixNano()) + `,"name":"timewait-guard","on":false}
{"v":1,"kind":"mitigation","t":` + itoa64(at(4).UnixNano()) + `,"name":"timewait-guard","on":true}
`
	sw, err := readSwitches(strings.NewReader(log), "v.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	got := SplitReport(r, sw).Phases
	want := []Phase{
		{Start: at(0), End: at(1), Mitigations: []string{"timewait-guard"}, Connections: 1, CleanCloses: 1},
		{Start: at(1), End: at(4), Mitigations: []string{}, Connections: 2, CleanCloses: 1, FailedRequests: 1, Duels: 1, DuelSegments: 9, DuelSeconds: 1.5},
		{Start: at(4), Mitigations: []string{"timewait-guard"}, Connections: 1, CleanCloses: 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("phases (-want +got):\n%s", diff)
	}
	var b strings.Builder
	if err := WriteSplitText(&b, SplitReport(r, sw)); err != nil || !strings.Contains(b.String(), "split at 2 mitigation switches") {
		t.Errorf("text: %q, %v", b.String(), err)
	}
	if _, err := readSwitches(strings.NewReader(`{"kind":"mitigation","t":"x"}`+"\n"), "v.jsonl"); err == nil || !strings.Contains(err.Error(), "v.jsonl:1") {
		t.Errorf("a broken record: %v, want an error naming v.jsonl:1", err)
	}
}

func itoa64(v int64) string { return strconv.FormatInt(v, 10) }
