package analysis

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/closeduel/closeduel/internal/roottest"
)

var update = flag.Bool("update", false, "rewrite the golden reports in testdata/")

// knownAnswers is what each lab capture must yield; testdata/README.md
// says how each was made.
var knownAnswers = map[string]outcome{
	"linux-clean-churn":    {Connections: 20, Clean: 20},
	"linux-lost-final-ack": {Connections: 10, Retrans: 10, FINRetrans: 10, RSTs: 10},
	"linux-time-wait-reuse": {Connections: 2, Clean: 1, Failed: 1, Duels: 1, DuelSegments: 19, Retrans: 7,
		SYNRetrans: 6, RSTs: 6, Ignored: 5, TWReuse: 1},
	"lwip-observe": {Connections: 51, Clean: 51},
	// Every connection's final ACK dropped once, the device's FIN
	// retransmitted once (TestLwIPLostFinalAck says which segments).
	"lwip-lost-final-ack": {Connections: 6, Clean: 6, Retrans: 6, FINRetrans: 6},
	// Linux accepts each SYN on the tuple it holds in TIME_WAIT: three
	// TIME_WAIT reuses (the tracker's model: the device holds TIME_WAIT,
	// 2·MSL for a stack not named), no duel
	// (TestAcceptedReuseDoesNotDuel).
	"linux-port-reuse": {Connections: 4, Clean: 4, TWReuse: 3},
	"lwip-port-reuse": {Connections: 51, Clean: 4, Failed: 46, Duels: 3, DuelSegments: 666, Retrans: 191,
		SYNRetrans: 191, RSTs: 237, Ignored: 187, TWReuse: 34},
	// Every client ACK of the device's FIN dropped: one duel per
	// connection, the FIN back-off until an RST (TestLongLostFinalAck).
	"lwip-long-lost-final-ack": {Connections: 10, Duels: 10, DuelSegments: 120, Retrans: 60, FINRetrans: 60, RSTs: 10},
	// The device's pool of 5 pcbs full: each later SYN has lwIP reset
	// the oldest active connection (TestLwIPPoolKill).
	"lwip-pool-exhausted": {Connections: 8, Clean: 5, Failed: 3, Retrans: 5, RSTs: 3},
	// The device closing first and every client answer to its FIN dropped
	// (its FIN+ACK too): the close stalls, one stalled-close duel per
	// connection until Linux's RST (TestStalledClose).
	"lwip-stalled-close":      {Connections: 3, Duels: 3, DuelSegments: 45, Retrans: 42, FINRetrans: 42, RSTs: 3},
	"lwip-stalled-close-wire": {Connections: 3, Duels: 3, DuelSegments: 60, Retrans: 42, FINRetrans: 42, RSTs: 3},
	// The same run as the lab's bridge saw it: a plain capture.
	"lwip-long-lost-final-ack-wire": {Connections: 10, Duels: 10, DuelSegments: 120, Retrans: 60, FINRetrans: 60, RSTs: 10},
}

func labCapturePaths(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob("testdata/*.pcap*")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no captures in testdata: %v", err)
	}
	return paths
}

func captureName(p string) string { return strings.TrimSuffix(filepath.Base(p), filepath.Ext(p)) }

// goldenCase is one known-answer input: a capture, or a run directory.
type goldenCase struct {
	name  string
	paths []string
	run   *RunInfo
	base  string // testdata/<name>, where the golden files go
}

func goldenCases(t *testing.T) []goldenCase {
	t.Helper()
	var cases []goldenCase
	for _, p := range labCapturePaths(t) {
		cases = append(cases, goldenCase{name: captureName(p), paths: []string{p}, base: strings.TrimSuffix(p, filepath.Ext(p))})
	}
	dirs, _ := filepath.Glob("testdata/*/" + RunFile)
	for _, y := range dirs {
		dir := filepath.Dir(y)
		run, err := ReadRun(dir)
		if err != nil {
			t.Fatal(err)
		}
		paths, err := RunInputs(dir)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, goldenCase{name: filepath.Base(dir), paths: paths, run: run, base: dir})
	}
	return cases
}

// TestKnownAnswers checks the headline figures of each lab capture.
func TestKnownAnswers(t *testing.T) {
	for _, gc := range goldenCases(t) {
		want, ok := knownAnswers[gc.name]
		if !ok {
			t.Errorf("%s has no known answer: add it to knownAnswers and testdata/README.md", gc.name)
			continue
		}
		t.Run(gc.name, func(t *testing.T) {
			got := outcomeOf(analyzeFiles(t, Config{Run: gc.run}, gc.paths...))
			got.Close, got.Closer, got.History, got.Causes, got.Turns = nil, nil, nil, nil, nil
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestGolden compares the full JSON and text reports of each known-answer
// input with testdata/<name>.golden.json and .golden.txt (for a run
// directory, golden.json and golden.txt inside it); -update rewrites them.
func TestGolden(t *testing.T) {
	for _, gc := range goldenCases(t) {
		t.Run(gc.name, func(t *testing.T) {
			r := analyzeFiles(t, Config{Run: gc.run}, gc.paths...)
			var js, txt bytes.Buffer
			enc := json.NewEncoder(&js)
			enc.SetIndent("", "  ")
			if err := enc.Encode(r); err != nil {
				t.Fatal(err)
			}
			if err := WriteText(&txt, r, TextOptions{AllConnections: true}); err != nil {
				t.Fatal(err)
			}
			sep := "."
			if gc.run != nil {
				sep = "/"
			}
			for ext, got := range map[string][]byte{"golden.json": js.Bytes(), "golden.txt": txt.Bytes()} {
				golden := gc.base + sep + ext
				if *update {
					if err := os.WriteFile(golden, got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run with -update to create it)", err)
				}
				if diff := cmp.Diff(string(want), string(got)); diff != "" {
					t.Errorf("%s (-want +got):\n%s", golden, diff)
				}
			}
		})
	}
}

// tsharkCounts runs Wireshark's two-pass TCP analysis on a capture and
// returns its stream, retransmission and RST counts.
func tsharkCounts(t *testing.T, path string) (streams, retrans, rsts int) {
	t.Helper()
	out, err := exec.Command("tshark", "-r", path, "-2", "-T", "fields",
		"-e", "tcp.stream", "-e", "tcp.analysis.retransmission", "-e", "tcp.flags.reset").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 3 || f[0] == "" {
			continue
		}
		seen[f[0]] = true
		if f[1] != "" {
			retrans++
		}
		if v, _ := strconv.ParseBool(strings.TrimSpace(f[2])); v || strings.TrimSpace(f[2]) == "1" {
			rsts++
		}
	}
	return len(seen), retrans, rsts
}

// TestAgreesWithTshark: on the lab captures the connection,
// retransmission and RST counts equal Wireshark's (tcp.stream,
// tcp.analysis.retransmission, tcp.flags.reset), and the conversation
// count of `tshark -z conv,tcp` equals the connection count.
func TestAgreesWithTshark(t *testing.T) {
	roottest.RequireTools(t, "tshark")
	runs, _ := filepath.Glob("testdata/*/capture.pcapng")
	paths := append(labCapturePaths(t), runs...)
	for _, p := range paths {
		t.Run(p, func(t *testing.T) {
			r := analyzeFiles(t, Config{}, p)
			streams, retrans, rsts := tsharkCounts(t, p)
			out, err := exec.Command("tshark", "-r", p, "-q", "-z", "conv,tcp").Output()
			if err != nil {
				t.Fatalf("tshark conv: %v", err)
			}
			convs := strings.Count(string(out), "<->")
			want := []int{streams, convs, retrans, rsts}
			got := []int{r.Totals.Connections, r.Totals.Connections, r.Totals.Retransmissions, r.Totals.RSTs}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("[streams conversations retransmissions RSTs] (-tshark +closeduel):\n%s", diff)
			}
		})
	}
}

// TestDifferentialTshark compares the three counts with tshark's on a
// synthetic churn of about 2,000 connections with retransmitted
// responses and FINs and RSTs at random.
func TestDifferentialTshark(t *testing.T) {
	roottest.RequireTools(t, "tshark")
	p := filepath.Join(t.TempDir(), "churn.pcap")
	writeChurn(t, p, 20_000)
	r := analyzeFiles(t, Config{}, p)
	streams, retrans, rsts := tsharkCounts(t, p)
	want := []int{streams, retrans, rsts}
	got := []int{r.Totals.Connections, r.Totals.Retransmissions, r.Totals.RSTs}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("[streams retransmissions RSTs] (-tshark +closeduel):\n%s", diff)
	}
	t.Logf("connections, retransmissions, RSTs: tshark %v, closeduel %v", want, got)
	if retrans < 50 || rsts < 10 {
		t.Errorf("the capture has too few events to compare: %d retransmissions, %d RSTs", retrans, rsts)
	}
}
