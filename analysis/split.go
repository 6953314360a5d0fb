package analysis

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Switch is a middlebox mitigation switched on or off during a run, as
// the verdict log's mitigation record says.
type Switch struct {
	Time time.Time `json:"t"`
	Name string    `json:"name"`
	On   bool      `json:"on"`
}

// maxSwitchLine bounds a verdict log line ReadSwitches reads.
const maxSwitchLine = 1 << 20

// ReadSwitches returns the mitigation records of a closeduel JSON Lines
// verdict log, in log order. Lines of other kinds are skipped.
func ReadSwitches(path string) ([]Switch, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("analysis: %w", err)
	}
	defer f.Close()
	return readSwitches(f, path)
}

func readSwitches(r io.Reader, name string) ([]Switch, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxSwitchLine)
	var out []Switch
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if !bytes.Contains(b, []byte(`"kind":"mitigation"`)) {
			continue
		}
		var rec struct {
			Kind string `json:"kind"`
			T    int64  `json:"t"`
			Name string `json:"name"`
			On   bool   `json:"on"`
		}
		if err := json.Unmarshal(b, &rec); err != nil || rec.Kind != "mitigation" {
			return nil, fmt.Errorf("analysis: %s:%d: a mitigation record that does not decode", name, line)
		}
		out = append(out, Switch{Time: time.Unix(0, rec.T).UTC(), Name: rec.Name, On: rec.On})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("analysis: %s: line %d: %w", name, line+1, err)
	}
	return out, nil
}

// Split is a report cut at the mitigation switches of its run.
type Split struct {
	Switches []Switch `json:"switches"`
	Phases   []Phase  `json:"phases"`
	// Unplaced counts connections the report did not list (see
	// Report.ConnectionsOmitted): they are in no phase.
	Unplaced int `json:"unplaced"`
}

// Phase is the part of a run between two switches. A connection belongs
// to the phase its first segment is in, a duel to the phase its first
// segment is in.
type Phase struct {
	Start time.Time `json:"start"`
	// End is the next switch; zero for the last phase.
	End time.Time `json:"end,omitzero"`
	// Mitigations are those on during the phase.
	Mitigations    []string `json:"mitigations"`
	Connections    int      `json:"connections"`
	CleanCloses    int      `json:"clean_closes"`
	FailedRequests int      `json:"failed_requests"`
	Duels          int      `json:"duels"`
	DuelSegments   int      `json:"duel_segments"`
	DuelSeconds    Seconds  `json:"duel_seconds"`
}

// SplitReport cuts r at the switches. Switches at or before r's first
// segment set the first phase's mitigations and cut nothing.
func SplitReport(r *Report, switches []Switch) *Split {
	sw := slices.Clone(switches)
	sort.SliceStable(sw, func(i, j int) bool { return sw[i].Time.Before(sw[j].Time) })
	s := &Split{Switches: sw, Unplaced: r.ConnectionsOmitted}
	on := map[string]bool{}
	names := func() []string {
		out := []string{}
		for n, v := range on {
			if v {
				out = append(out, n)
			}
		}
		sort.Strings(out)
		return out
	}
	start := r.First
	i := 0
	for ; i < len(sw) && !sw[i].Time.After(r.First); i++ {
		on[sw[i].Name] = sw[i].On
	}
	for ; i < len(sw); i++ {
		s.Phases = append(s.Phases, Phase{Start: start, End: sw[i].Time, Mitigations: names()})
		on[sw[i].Name] = sw[i].On
		start = sw[i].Time
	}
	s.Phases = append(s.Phases, Phase{Start: start, Mitigations: names()})
	phaseOf := func(t time.Time) *Phase {
		for j := len(s.Phases) - 1; j > 0; j-- {
			if !t.Before(s.Phases[j].Start) {
				return &s.Phases[j]
			}
		}
		return &s.Phases[0]
	}
	for k := range r.Connections {
		c := &r.Connections[k]
		p := phaseOf(c.Start)
		p.Connections++
		if c.Clean {
			p.CleanCloses++
		}
		if c.Failed {
			p.FailedRequests++
		}
	}
	for k := range r.Duels {
		d := &r.Duels[k]
		p := phaseOf(d.Start)
		p.Duels++
		p.DuelSegments += d.Segments
		p.DuelSeconds += d.Duration
	}
	return s
}

// WriteSplitText writes the phases as a table.
func WriteSplitText(w io.Writer, s *Split) error {
	ew := &errWriter{w: w}
	ew.printf("PHASES (split at %d mitigation switches)\n", len(s.Phases)-1)
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  #\tstart\tend\tmitigations on\tconnections\tclean\tfailed\tduels\tsegs in duels\tsecs in duels\t\n")
	for i := range s.Phases {
		p := &s.Phases[i]
		end := "-"
		if !p.End.IsZero() {
			end = p.End.Format("15:04:05.000000")
		}
		on := strings.Join(p.Mitigations, ",")
		if on == "" {
			on = "none"
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t\n", i+1, p.Start.Format("15:04:05.000000"), end, on,
			p.Connections, p.CleanCloses, p.FailedRequests, p.Duels, p.DuelSegments, fmtSec(p.DuelSeconds))
	}
	tw.Flush()
	if s.Unplaced > 0 {
		ew.printf("  %d connections not listed in the report are in no phase\n", s.Unplaced)
	}
	return ew.err
}
