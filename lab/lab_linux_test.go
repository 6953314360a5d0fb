package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/closeduel/closeduel/analysis"
	"github.com/closeduel/closeduel/bridgehook"
	"github.com/closeduel/closeduel/internal/capturetest"
	"github.com/closeduel/closeduel/internal/roottest"
	"github.com/closeduel/closeduel/netns"
	"github.com/closeduel/closeduel/segment"
)

// testConfig is a short lab run with namespace names unique to this test
// process (suffix tells the tests apart) and this test binary as helper.
func testConfig(t *testing.T, suffix, schedule string) Config {
	t.Helper()
	s, err := ParseSchedule(schedule)
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		Name:     fmt.Sprintf("lb%d%s", os.Getpid()%100000, suffix),
		RunsDir:  t.TempDir(),
		Helper:   []string{os.Args[0], helperArg},
		Version:  "test",
		Schedule: s,
		Quiet:    300 * time.Millisecond,
		WaitEOF:  true,
		Command:  []string{"lab_linux_test"},
	}
}

// wireSegment is one TCP segment of a capture with its time.
type wireSegment struct {
	at      time.Time
	seg     segment.Segment
	payload []byte
}

// readCapture returns the TCP segments of an Ethernet pcapng.
func readCapture(t *testing.T, path string) []wireSegment {
	t.Helper()
	var out []wireSegment
	for _, cs := range capturetest.Read(t, path) {
		ws := wireSegment{seg: cs.Seg, at: cs.At}
		off := 14 + ws.seg.IPHeaderLen + ws.seg.TCPHeaderLen
		ws.payload = append([]byte(nil), cs.Data[off:off+ws.seg.PayloadLen]...)
		out = append(out, ws)
	}
	return out
}

// namespacesGone fails t when any namespace of the run is still bound or
// an iptables chain of closeduel is left in our own namespace.
func namespacesGone(t *testing.T, res *Result) {
	t.Helper()
	if len(res.Record.Topology.Namespaces) == 0 {
		t.Fatal("run.yaml names no namespaces")
	}
	for _, ns := range res.Record.Topology.Namespaces {
		if netns.Exists(ns) {
			t.Errorf("namespace %s still exists after the run", ns)
		}
	}
	left, err := netns.List("cd-" + res.Record.Topology.Name + "-")
	if err != nil || len(left) > 0 {
		t.Errorf("namespaces left: %v (%v)", left, err)
	}
	chains, err := bridgehook.Leftovers(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(chains) > 0 {
		t.Errorf("iptables leftovers in our namespace: %v", chains)
	}
}

// deviceClosesFirst checks every connection of a capture: the device sent
// the response, then its FIN, and the client's FIN came after and acked it.
func deviceClosesFirst(t *testing.T, segs []wireSegment, requests int) {
	t.Helper()
	type conn struct {
		response             []byte
		devFIN, cliFIN       time.Time
		devFINEnd, cliFINAck segment.Seq
	}
	conns := map[uint16]*conn{}
	for _, ws := range segs {
		fromDevice := ws.seg.Src.Port() == DefaultPort
		port := ws.seg.Dst.Port()
		if !fromDevice {
			port = ws.seg.Src.Port()
		}
		c := conns[port]
		if c == nil {
			c = &conn{}
			conns[port] = c
		}
		if fromDevice {
			c.response = append(c.response, ws.payload...)
		}
		if ws.seg.Flags&segment.FIN != 0 {
			if fromDevice && c.devFIN.IsZero() {
				c.devFIN, c.devFINEnd = ws.at, ws.seg.End()
			}
			if !fromDevice && c.cliFIN.IsZero() {
				c.cliFIN, c.cliFINAck = ws.at, ws.seg.Ack
			}
		}
	}
	if len(conns) != requests {
		t.Errorf("%d connections in the capture, want %d", len(conns), requests)
	}
	want := Response(DefaultSize)
	for port, c := range conns {
		if !bytes.Equal(c.response, want) {
			t.Errorf("port %d: device sent %q, want %q", port, c.response, want)
		}
		switch {
		case c.devFIN.IsZero():
			t.Errorf("port %d: the device sent no FIN", port)
		case c.cliFIN.IsZero():
			t.Errorf("port %d: the client sent no FIN", port)
		case !c.devFIN.Before(c.cliFIN):
			t.Errorf("port %d: client FIN at %v before the device's at %v", port, c.cliFIN, c.devFIN)
		case c.cliFINAck != c.devFINEnd:
			t.Errorf("port %d: the client's FIN acks %d, want the device's FIN (%d)", port, c.cliFINAck, c.devFINEnd)
		}
	}
}

func TestLabLwIPEndToEnd(t *testing.T) {
	roottest.Require(t)
	cfg := testConfig(t, "a", "3x300ms,6x100ms")
	cfg.Inline = &Engine{Version: "test"}
	cfg.Seed = 42
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	requests := cfg.Schedule.Requests()
	wire := readCapture(t, filepath.Join(res.Dir, FileWire))

	t.Run("nothing left behind", func(t *testing.T) { namespacesGone(t, res) })

	t.Run("device answers and closes first", func(t *testing.T) {
		deviceClosesFirst(t, wire, requests)
		if got := closes(res.Analysis); !cmp.Equal(got, map[string]int{"resp fin": requests}) {
			t.Errorf("analysis: connections by closer and close %v, want all %d closed by the device (resp fin)", got, requests)
		}
		if r := res.Record.Results; r.RequestsOK != requests || r.RequestsFailed != 0 {
			t.Errorf("requests ok %d failed %d, want %d and 0", r.RequestsOK, r.RequestsFailed, requests)
		}
	})

	t.Run("schedule kept within 10ms per gap", func(t *testing.T) {
		var syns []time.Time
		seen := map[uint16]bool{}
		for _, ws := range wire {
			if ws.seg.Flags == segment.SYN && !seen[ws.seg.Src.Port()] {
				seen[ws.seg.Src.Port()] = true
				syns = append(syns, ws.at)
			}
		}
		if len(syns) != requests {
			t.Fatalf("%d SYNs on the wire, want %d", len(syns), requests)
		}
		starts := clientStarts(t, filepath.Join(res.Dir, FileWorkload))
		for i, gap := range cfg.Schedule {
			got := syns[i+1].Sub(syns[i])
			if d := got - gap; d > 10*time.Millisecond || d < -10*time.Millisecond {
				t.Errorf("gap %d on the wire: %v, want %v ±10ms (the client started them %v apart)", i, got, gap, starts[i+1].Sub(starts[i]))
			}
		}
	})

	t.Run("the live analysis is the analysis of the run directory", func(t *testing.T) {
		want, err := analysis.AnalyzeRun(context.Background(), res.Dir)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, res.Analysis, cmpopts.IgnoreFields(analysis.Report{}, "Inputs")); diff != "" {
			t.Errorf("report (-analysis of the run directory +live analysis):\n%s", diff)
		}
		if res.Analysis.Totals.Segments != len(wire) {
			t.Errorf("the live analysis saw %d segments, the wire %d", res.Analysis.Totals.Segments, len(wire))
		}
	})

	t.Run("run directory holds everything", func(t *testing.T) {
		var files []string
		filepath.WalkDir(res.Dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(res.Dir, p)
				files = append(files, rel)
			}
			return nil
		})
		sort.Strings(files)
		want := []string{FileCapture, FileDevice, FileReportHTML, FileReportJSON, FileReport, FileRecord, FileVerdicts, FileWire, FileWorkload}
		sort.Strings(want)
		if strings.Join(files, " ") != strings.Join(want, " ") {
			t.Errorf("run directory holds %v, want %v", files, want)
		}
		rec, err := ReadRecord(filepath.Join(res.Dir, FileRecord))
		if err != nil {
			t.Fatal(err)
		}
		kernel, _ := exec.Command("uname", "-r").Output()
		checks := []struct {
			name      string
			got, want any
		}{
			{"seed", rec.Seed, cfg.Seed},
			{"kernel", rec.Versions.Kernel, strings.TrimSpace(string(kernel))},
			{"lwip", rec.Versions.LwIP, "2.1.3"},
			{"closeduel", rec.Versions.Closeduel, "test"},
			{"schedule", rec.Workload.Schedule.String(), "3x300ms,6x100ms"},
			{"device", rec.Device.Kind, DeviceLwIP},
			{"pool", rec.Device.Pool, DefaultPool},
			{"client close", rec.Workload.ClientClose, "eof"},
			{"requests ok", rec.Results.RequestsOK, requests},
			{"segments", rec.Results.Analysis.Segments, len(wire)},
			{"connections", rec.Results.Analysis.Connections, requests},
			{"verdicts", rec.Results.Verdicts["pass"], uint64(len(wire))},
			{"workload end after start", rec.WorkloadEnd.After(rec.WorkloadStart), true},
			{"port range sysctl recorded", rec.Workload.Sysctls[sysctlPortRange] != "", true},
		}
		for _, c := range checks {
			if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
				t.Errorf("run.yaml %s = %v, want %v", c.name, c.got, c.want)
			}
		}
		if rec.Seed == 0 {
			t.Error("run.yaml seed is 0")
		}
		if n := countLines(t, filepath.Join(res.Dir, FileVerdicts), `"kind":"verdict"`); n != len(wire) {
			t.Errorf("verdicts.jsonl has %d verdicts, want one per segment (%d)", n, len(wire))
		}
		if n := countLines(t, filepath.Join(res.Dir, FileDevice), `"event":"accept"`); n != requests {
			t.Errorf("device.log has %d accepts, want %d", n, requests)
		}
		if n := countLines(t, filepath.Join(res.Dir, FileDevice), `"final":true`); n != 1 {
			t.Errorf("device.log has %d final status lines, want 1", n)
		}
		if n := countLines(t, filepath.Join(res.Dir, FileWorkload), `"kind":"result"`); n != requests {
			t.Errorf("workload.log has %d results, want %d", n, requests)
		}
		report, err := os.ReadFile(filepath.Join(res.Dir, FileReport))
		if err != nil {
			t.Fatal(err)
		}
		// The analysis first, then the lab's section.
		for _, want := range []string{fmt.Sprintf(`\n  connections +%d\n`, requests), `\n\nLAB\n`, fmt.Sprintf(`\n  requests +%d ok, 0 failed`, requests)} {
			if !regexp.MustCompile(want).Match(report) {
				t.Errorf("report.txt lacks %q:\n%s", want, report)
			}
		}
	})
}

// clientStarts returns when the client started each request.
func clientStarts(t *testing.T, path string) []time.Time {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []time.Time
	dec := json.NewDecoder(bytes.NewReader(b))
	for dec.More() {
		var ev ClientEvent
		if err := dec.Decode(&ev); err != nil {
			t.Fatal(err)
		}
		if ev.Kind == ClientStart {
			out = append(out, time.Unix(0, ev.Start))
		}
	}
	return out
}

func countLines(t *testing.T, path, substr string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<22)
	for sc.Scan() {
		if strings.Contains(sc.Text(), substr) {
			n++
		}
	}
	return n
}

func TestLabLinuxDeviceClosesFirst(t *testing.T) {
	roottest.Require(t)
	cfg := testConfig(t, "b", "3x100ms")
	cfg.Device = DeviceLinux
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	namespacesGone(t, res)
	deviceClosesFirst(t, readCapture(t, filepath.Join(res.Dir, FileCapture)), cfg.Schedule.Requests())
	if n := res.Analysis.Totals.Duels; n != 0 {
		t.Errorf("%d duels against the Linux device, want 0", n)
	}
}

func TestLabInterruptedCleansUp(t *testing.T) {
	roottest.Require(t)
	cfg := testConfig(t, "c", "20x200ms")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Interrupt the run once its client has finished a request, however
	// long the bench took to come up.
	cancelled := make(chan time.Time, 1)
	go func() {
		for ctx.Err() == nil {
			logs, _ := filepath.Glob(filepath.Join(cfg.RunsDir, "*", FileWorkload))
			for _, l := range logs {
				if b, _ := os.ReadFile(l); bytes.Contains(b, []byte(`"kind":"result"`)) {
					time.Sleep(300 * time.Millisecond)
					cancelled <- time.Now()
					cancel()
					return
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	res, err := Run(ctx, cfg)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run cut short returned %v, want context.Canceled", err)
	}
	if took := time.Since(<-cancelled); took > 5*time.Second {
		t.Errorf("an interrupted run took %v to clean up", took)
	}
	if res == nil {
		t.Fatal("no result from an interrupted run")
	}
	namespacesGone(t, res)
	rec, err := ReadRecord(filepath.Join(res.Dir, FileRecord))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Results.RequestsOK == 0 || rec.Results.RequestsOK >= cfg.Schedule.Requests() {
		t.Errorf("interrupted run recorded %d ok requests, want some but not all %d", rec.Results.RequestsOK, cfg.Schedule.Requests())
	}
}

func TestSweepStaleRemovesDeadRunsOnly(t *testing.T) {
	roottest.Require(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := fmt.Sprintf("cd-l%d-client", dead.Process.Pid)
	live := fmt.Sprintf("cd-l%d-client", os.Getppid())
	for _, ns := range []string{stale, live} {
		if netns.Exists(ns) {
			t.Skipf("namespace %s exists already", ns)
		}
		if err := netns.Add(context.Background(), ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { netns.Delete(ns) })
	}
	removed, err := SweepStale()
	if err != nil {
		t.Fatal(err)
	}
	if !contains(removed, stale) || netns.Exists(stale) {
		t.Errorf("SweepStale removed %v; the stale %s should be gone", removed, stale)
	}
	if contains(removed, live) || !netns.Exists(live) {
		t.Errorf("SweepStale removed %s, whose process (our parent) lives", live)
	}
}

func TestDeviceOptions(t *testing.T) {
	roottest.Require(t)
	tests := []struct {
		name   string
		suffix string
		edit   func(*Config)
		closes map[string]int           // connections by closer and close kind
		status func(DeviceEvent) string // "" when the status is right
	}{
		{
			// Each connection leaves one TIME_WAIT pcb; with room for
			// two, the 3rd, 4th and 5th SYN each free the oldest.
			name: "pool of two frees the oldest TIME_WAIT", suffix: "d",
			edit:   func(c *Config) { c.Pool = 2 },
			closes: map[string]int{"resp fin": 5},
			status: func(st DeviceEvent) string {
				if st.PoolKilled["time_wait"] != 3 || st.TimeWait != 2 {
					return fmt.Sprintf("pool killed %v, %d in TIME_WAIT; want 3 TIME_WAIT kills, 2 left", st.PoolKilled, st.TimeWait)
				}
				return ""
			},
		},
		{
			name: "short TIME_WAIT expires between requests", suffix: "e",
			edit:   func(c *Config) { c.TimeWait = 100 * time.Millisecond },
			closes: map[string]int{"resp fin": 5},
			status: func(st DeviceEvent) string {
				if st.TWExpired != 5 || st.PoolKilled["time_wait"] != 0 || st.TimeWait != 0 {
					return fmt.Sprintf("%d expired, pool killed %v, %d in TIME_WAIT; want 5, none, 0", st.TWExpired, st.PoolKilled, st.TimeWait)
				}
				return ""
			},
		},
		{
			name: "abort resets every connection", suffix: "f",
			edit:   func(c *Config) { c.Close = CloseAbort },
			closes: map[string]int{"resp rst": 5},
			status: func(st DeviceEvent) string {
				if st.Aborted != 5 || st.TimeWait != 0 {
					return fmt.Sprintf("%d aborted, %d in TIME_WAIT; want 5 and 0", st.Aborted, st.TimeWait)
				}
				return ""
			},
		},
		{
			name: "wait lets the client close first", suffix: "g",
			edit:   func(c *Config) { c.Close, c.WaitEOF = CloseWaitClient, false },
			closes: map[string]int{"orig fin": 5},
			status: func(st DeviceEvent) string {
				if st.Closed != 5 || st.TimeWait != 0 {
					return fmt.Sprintf("%d closed, %d in TIME_WAIT; want 5 and 0 (the client holds TIME_WAIT)", st.Closed, st.TimeWait)
				}
				return ""
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, tt.suffix, "4x300ms")
			tt.edit(&cfg)
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.closes, closes(res.Analysis)); diff != "" {
				t.Errorf("connections by closer and close (-want +got):\n%s", diff)
			}
			if !res.DeviceStatus.Final {
				t.Fatalf("no final device status: %+v", res.DeviceStatus)
			}
			if msg := tt.status(res.DeviceStatus); msg != "" {
				t.Error(msg)
			}
		})
	}
}

// closes counts a report's connections by closer and close kind, as
// "resp fin".
func closes(r *analysis.Report) map[string]int {
	out := map[string]int{}
	if r == nil {
		return out
	}
	for _, c := range r.Connections {
		out[c.Closer.String()+" "+c.Close.String()]++
	}
	return out
}
