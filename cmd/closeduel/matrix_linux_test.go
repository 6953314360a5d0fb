package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/closeduel/closeduel/analysis"
	"github.com/closeduel/closeduel/internal/capturetest"
	"github.com/closeduel/closeduel/internal/roottest"
	"github.com/closeduel/closeduel/lab"
	"github.com/closeduel/closeduel/rules"
	"github.com/closeduel/closeduel/segment"
)

// TestMain lets the test binary play the lab's helpers: the matrix starts
// os.Executable() with "lab client --config ..." in the client namespace.
func TestMain(m *testing.M) {
	if code, ok := lab.HelperMain("lab", os.Args[1:]); ok {
		os.Exit(code)
	}
	code := m.Run()
	removeBuiltBinary()
	os.Exit(code)
}

// wireCount is a figure of the lab's own capture of the bridge (every
// frame as its host sent it, before closeduel's verdict) that an
// experiment must show: who sent how many segments with a flag.
type wireCount struct {
	experiment, device string
	// key is "client FIN", "device RST", "client SYN" (a SYN without
	// ACK), ...
	key    string
	lo, hi int
	why    string
}

const many = 1 << 30

// wireCounts are the experiments' mechanisms as the hosts put them on the
// wire, next to their expect: sections (checked from the analysis).
var wireCounts = []wireCount{
	{"observe-only", "lwip", "device RST", 0, 0, "nothing is changed: no RST"},
	{"observe-only", "lwip", "device FIN", 6, 6, "one FIN per request"},
	{"reused-tuple", "lwip", "client SYN", 6, many, "the reusing SYNs are retransmitted into the device's TIME_WAIT"},
	{"reused-tuple", "lwip", "client RST", 4, many, "Linux answers each of lwIP's ACKs of the old connection with an RST"},
	{"reused-tuple", "linux", "client RST", 0, 0, "Linux's TIME_WAIT accepts the newer SYN"},
	{"lost-fin-acks", "lwip", "device FIN", 15, many, "lwIP retransmits its FIN 1.5, 4.5, 10.5, 22.5, 46.5 s after the close"},
	{"lost-fin-acks", "lwip", "device RST", 0, 0, "lwIP never gives up within the run"},
	{"busy-close", "lwip", "device FIN", 15, many, "lwIP retransmits its FIN 1.5, 4.5, 10.5, 22.5, 46.5 s after the close"},
	{"busy-close", "lwip", "client ACK of device FIN", 15, many, "Linux's TIME_WAIT acknowledges every one"},
	{"busy-close", "lwip", "client RST", 0, 0, "Linux's TIME_WAIT outlives the run"},
	{"lost-final-ack", "lwip", "device FIN", 6, many, "each FIN sent twice"},
	{"lost-device-fin", "lwip", "device FIN", 6, many, "each FIN sent twice"},
	{"device-fin-to-rst", "lwip", "device FIN", 10, many, "the FIN (turned into an RST on the way) and its retransmission"},
	{"device-fin-to-rst", "lwip", "client RST", 5, many, "the retransmitted FIN meets a closed socket"},
	{"client-rst-lost", "lwip", "client RST", 10, many, "the lost RST and the one the device's next segment draws"},
	{"client-abort", "lwip", "client RST", 5, many, "SO_LINGER 0"},
	{"client-abort", "lwip", "client FIN", 0, 0, "an abortive close sends no FIN"},
	{"pool-exhausted", "lwip", "device RST", 1, many, "the pool frees its oldest active pcb with an RST"},
	{"pool-exhausted", "linux", "device RST", 0, 0, "no pool"},
	{"rst-instead-of-fin", "lwip", "device RST", 5, many, "lwIP resets from CLOSE_WAIT instead of sending its FIN"},
	{"rst-instead-of-fin", "lwip", "device FIN", 0, 0, "no FIN at all"},
	{"rst-instead-of-fin", "linux", "device FIN", 5, many, "Linux closes with a FIN"},
	{"simultaneous-close", "lwip", "client FIN", 3, many, "a FIN per connection"},
	{"simultaneous-close", "lwip", "device FIN", 3, many, "a FIN per connection (retransmitted when the hold outlasts its timer)"},
	{"delayed-final-ack", "lwip", "device FIN", 3, many, "every connection closes"},
	{"ack-storm", "lwip", "client FIN", 2, many, "both requests close"},
}

// TestLibraryMatrix runs `closeduel lab --matrix`: every library
// experiment against the real lwIP device and the Linux control, all
// benches at once, and asserts each experiment's expect: section (from
// the analysis of its capture) and its mechanism on the wire (wireCounts).
func TestLibraryMatrix(t *testing.T) {
	roottest.Require(t)
	if testing.Short() {
		t.Skip("the matrix takes about 40 s")
	}
	t.Parallel()
	runs := t.TempDir()
	var out, progress bytes.Buffer
	app := newApp()
	app.Writer, app.ErrWriter = &out, &progress
	err := app.RunContext(context.Background(), []string{"closeduel", "lab", "--matrix", "--runs", runs})
	t.Logf("matrix:\n%s", out.String())
	if err != nil {
		t.Fatalf("lab --matrix: %v\n%s", err, progress.String())
	}
	dirs, _ := filepath.Glob(filepath.Join(runs, "*-matrix"))
	if len(dirs) != 1 {
		t.Fatalf("matrix directories %v, want one", dirs)
	}
	var mf MatrixFile
	data, err := os.ReadFile(filepath.Join(dirs[0], "matrix.json"))
	if err == nil {
		err = json.Unmarshal(data, &mf)
	}
	if err != nil {
		t.Fatal(err)
	}
	if mf.Schema != MatrixSchema || len(mf.Cells) != 2*len(rules.LibraryNames()) {
		t.Fatalf("matrix.json: schema %q, %d cells, want %q and %d", mf.Schema, len(mf.Cells), MatrixSchema, 2*len(rules.LibraryNames()))
	}
	for _, f := range []string{"matrix.html"} {
		if _, err := os.Stat(filepath.Join(dirs[0], f)); err != nil {
			t.Error(err)
		}
	}
	for _, cell := range mf.Cells {
		t.Run(cell.Experiment+"/"+cell.Device, func(t *testing.T) {
			if cell.Error != "" {
				t.Fatalf("run failed: %s", cell.Error)
			}
			if cell.ExpectationMet == nil || !*cell.ExpectationMet {
				t.Errorf("expectation not met: %+v", cell.Expect)
			}
			if cell.OutOfOrder != 0 {
				t.Errorf("%d segments out of order on the bridge", cell.OutOfOrder)
			}
			dir := filepath.Join(dirs[0], cell.RunDir)
			for _, f := range []string{lab.FileReport, lab.FileReportJSON, lab.FileReportHTML, lab.FileRecord} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Error(err)
				}
			}
			agreesWithTshark(t, dir)
			counts := countWire(t, filepath.Join(dir, lab.FileWire))
			for _, w := range wireCounts {
				if w.experiment != cell.Experiment || w.device != cell.Device {
					continue
				}
				if n := counts[w.key]; n < w.lo || n > w.hi {
					hi := fmt.Sprint(w.hi)
					if w.hi == many {
						hi = "any"
					}
					t.Errorf("%s: %d on the wire, want %d to %s (%s)", w.key, n, w.lo, hi, w.why)
				}
			}
		})
	}
}

// countWire counts the capture's segments by sender and flag: "client
// FIN", "device RST", "client SYN" (without ACK), and "client ACK of
// device FIN".
func countWire(t *testing.T, path string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	devFIN := map[uint16]segment.Seq{} // by client port: the end of the device's FIN
	for _, cs := range capturetest.Read(t, path) {
		s := cs.Seg
		who := "client"
		if s.Src.Port() == lab.DefaultPort {
			who = "device"
		}
		if who == "device" && s.Flags&segment.FIN != 0 {
			devFIN[s.Dst.Port()] = s.End()
		}
		if fin, ok := devFIN[s.Src.Port()]; who == "client" && ok && s.Flags&segment.ACK != 0 && s.Flags&segment.RST == 0 && s.Ack == fin {
			counts["client ACK of device FIN"]++
		}
		switch {
		case s.Flags&segment.RST != 0:
			counts[who+" RST"]++
		case s.Flags&segment.SYN != 0 && s.Flags&segment.ACK == 0:
			counts[who+" SYN"]++
		case s.Flags&segment.FIN != 0:
			counts[who+" FIN"]++
		}
	}
	return counts
}

// agreesWithTshark checks the analysis of a cell's bridge capture (every
// frame as its host sent it; with the run's roles and stacks) against
// tshark's two-pass TCP analysis of the same file: connections (tcp.stream),
// retransmissions and RSTs.
func agreesWithTshark(t *testing.T, dir string) {
	t.Helper()
	if _, err := exec.LookPath("tshark"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tshark is not installed and CI must compare with it (make deps-test)")
		}
		t.Log("tshark not installed: no comparison")
		return
	}
	wire := filepath.Join(dir, lab.FileWire)
	run, err := analysis.ReadRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := analysis.Analyze(context.Background(), analysis.Config{Run: run}, []string{wire})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("tshark", "-r", wire, "-2", "-Y", "tcp", "-T", "fields",
		"-e", "tcp.stream", "-e", "tcp.analysis.retransmission", "-e", "tcp.flags.reset").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	streams := map[string]bool{}
	var retrans, rsts int
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 3 || f[0] == "" {
			continue
		}
		streams[f[0]] = true
		if f[1] != "" {
			retrans++
		}
		if v := strings.TrimSpace(f[2]); v == "1" || v == "True" {
			rsts++
		}
	}
	got := [3]int{r.Totals.Connections, r.Totals.Retransmissions, r.Totals.RSTs}
	if want := [3]int{len(streams), retrans, rsts}; got != want {
		t.Errorf("%s: [connections retransmissions RSTs] closeduel %v, tshark -2 %v", wire, got, want)
	}
	t.Logf("[connections retransmissions RSTs] %v, as tshark -2", got)
}
