package mitigate_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/closeduel/closeduel/analysis"
	"github.com/closeduel/closeduel/internal/roottest"
	"github.com/closeduel/closeduel/lab"
	"github.com/closeduel/closeduel/mitigate"
	"github.com/closeduel/closeduel/nfq"
	"github.com/closeduel/closeduel/rules"
)

// The mitigations against the real lwIP device: each test runs the lab's
// bench twice with the same workload, without and with a mitigation, and
// reads the analysis of each run directory.

// helperArg makes the test binary play the lab's helper subcommands.
const helperArg = "mitigate-test-helper"

func TestMain(m *testing.M) {
	if code, ok := lab.HelperMain(helperArg, os.Args[1:]); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// labRun is one lab run of experiment with the mitigations on; during, when
// set, runs while the workload goes on. It returns the run directory's
// analysis and the lab's result.
func labRun(t *testing.T, tag, experiment string, on mitigate.Set, set func(*lab.Config), during func(*lab.Engine)) (*analysis.Report, *lab.Result) {
	t.Helper()
	f, err := rules.LoadLibrary(experiment)
	if err != nil {
		t.Fatal(err)
	}
	f.Mitigations = on
	var names []string
	for _, n := range mitigate.All() {
		if on.Has(n) {
			names = append(names, n.String())
		}
	}
	eng := &lab.Engine{Decider: rules.NewDecider(f, rules.Options{}), Rules: experiment, RulesSHA256: f.SHA256,
		Experiment: f.Experiment, Version: "test", Mitigations: names, Summary: summary}
	cfg := lab.Config{
		Name:       fmt.Sprintf("mt%d%s", os.Getpid()%10000, tag),
		Experiment: experiment + "-" + tag,
		RunsDir:    t.TempDir(),
		Helper:     []string{os.Args[0], helperArg},
		Version:    "test",
		Command:    []string{"mitigate lab_linux_test"},
		Seed:       42,
		Inline:     eng,
	}
	set(&cfg)
	done := make(chan struct{})
	if during != nil {
		go func() {
			defer close(done)
			during(eng)
		}()
	} else {
		close(done)
	}
	res, err := lab.Run(context.Background(), cfg)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	rep, err := analysis.AnalyzeRun(context.Background(), res.Dir)
	if err != nil {
		t.Fatal(err)
	}
	return rep, res
}

func summary(s nfq.Snapshot) map[string]uint64 {
	return map[string]uint64{"packets": s.Packets, "kernel_queue_dropped": s.KernelQueueDropped,
		"kernel_user_dropped": s.KernelUserDropped, "decider_panics": s.DeciderPanic, "injected": s.Injected}
}

// reuse is the TIME-WAIT reuse workload: two client ports, the device
// closes first, so every later connection reuses a tuple the device holds
// in TIME-WAIT; a connect gives up after 2 s.
func reuse(schedule string, quiet time.Duration) func(*lab.Config) {
	return func(c *lab.Config) {
		s, err := lab.ParseSchedule(schedule)
		if err != nil {
			panic(err)
		}
		c.Schedule, c.Quiet = s, quiet
		c.PortRange, c.WaitEOF, c.Concurrency, c.Timeout = "40000-40001", true, 2, 2*time.Second
	}
}

func totals(r *analysis.Report) string {
	t := &r.Totals
	return fmt.Sprintf("connections %d, clean %d, failed %d, duels %d (%d segments, %.3fs), RSTs %d, FIN retransmissions %d",
		t.Connections, t.CleanCloses, t.FailedRequests, t.Duels, t.DuelSegments, float64(t.DuelSeconds), t.RSTs, t.FINRetransmissions)
}

// TestTimewaitGuardEndsTheReuseDuel: without the guard the reuse workload
// duels (SYN, old ACK, RST, ...) and requests fail; with it no duel, no
// failed request, and every connection closes cleanly.
func TestTimewaitGuardEndsTheReuseDuel(t *testing.T) {
	roottest.Require(t)
	without, _ := labRun(t, "a", "reused-tuple", 0, reuse("3x1s", time.Second), nil)
	with, res := labRun(t, "b", "reused-tuple", mitigate.Set(0).With(mitigate.TimewaitGuard, true), reuse("3x1s", time.Second), nil)
	if n := res.Record.Results.RequestsFailed; n != 0 {
		t.Errorf("with the guard: the workload has %d failed requests, want 0", n)
	}
	t.Logf("without: %s", totals(without))
	t.Logf("with:    %s", totals(with))
	if without.Totals.Duels == 0 || without.Totals.TimeWaitReuses == 0 {
		t.Fatalf("without the guard: no duel or no TIME_WAIT reuse: the workload does not show the mechanism")
	}
	if with.Totals.Duels != 0 || with.Totals.TimeWaitReuses != 0 || with.Totals.IgnoredRSTs != 0 {
		t.Errorf("with the guard: %d duels, %d TIME_WAIT reuses, %d ignored RSTs; want none", with.Totals.Duels, with.Totals.TimeWaitReuses, with.Totals.IgnoredRSTs)
	}
	if with.Totals.FailedRequests > without.Totals.FailedRequests || with.Totals.FailedRequests != 0 {
		t.Errorf("with the guard: %d failed requests (without: %d), want 0", with.Totals.FailedRequests, without.Totals.FailedRequests)
	}
	if with.Totals.CleanCloses != with.Totals.Connections {
		t.Errorf("with the guard: %d of %d connections closed cleanly, want all", with.Totals.CleanCloses, with.Totals.Connections)
	}
}

// TestDuelQuenchStopsThePingPong: with duel-quench the reuse duel still
// starts (its first two turns are what it waits for) but the device sees
// no more of it: fewer segments in duels, fewer RSTs, no more failed
// requests and no more duels than without.
func TestDuelQuenchStopsThePingPong(t *testing.T) {
	roottest.Require(t)
	without, _ := labRun(t, "f", "reused-tuple", 0, reuse("3x1s", time.Second), nil)
	with, _ := labRun(t, "g", "reused-tuple", mitigate.Set(0).With(mitigate.DuelQuench, true), reuse("3x1s", time.Second), nil)
	t.Logf("without: %s", totals(without))
	t.Logf("with:    %s", totals(with))
	if without.Totals.Duels == 0 {
		t.Fatalf("without the quench: no duel: the workload does not show the mechanism")
	}
	if with.Totals.Duels > without.Totals.Duels || with.Totals.FailedRequests > without.Totals.FailedRequests {
		t.Errorf("with the quench: %d duels, %d failed requests; without: %d and %d", with.Totals.Duels, with.Totals.FailedRequests, without.Totals.Duels, without.Totals.FailedRequests)
	}
	if with.Totals.Duels > 0 && (with.Totals.RSTs >= without.Totals.RSTs || with.Totals.Drops == 0) {
		t.Errorf("with the quench: %d RSTs (without %d), %d drops: the ping-pong went on", with.Totals.RSTs, without.Totals.RSTs, with.Totals.Drops)
	}
}

// TestEndpointFixesEndTheReuseDuel: the host-side fixes that remove the
// held tuple or the reuse, each against the same reuse workload as the
// guard: the duel appears without them (one run shared by the subtests);
// with each, no duel and no failed request (close-second: no more than
// without, see portsHeld). (rfc1337, tw-reuse and timestamps do not touch
// this mechanism: TestClientSysctlsLeaveTheReuseDuel; a larger pool ends
// the pool kills instead: TestLargePoolEndsThePoolKills.)
func TestEndpointFixesEndTheReuseDuel(t *testing.T) {
	roottest.Require(t)
	without, base := labRun(t, "h", "reused-tuple", 0, reuse("3x1s", time.Second), nil)
	t.Logf("without: %s; the workload's failed requests %d", totals(without), base.Record.Results.RequestsFailed)
	if without.Totals.Duels == 0 || without.Totals.FailedRequests == 0 {
		t.Fatalf("without a fix: no duel or no failed request: the workload does not show the mechanism")
	}
	for i, fix := range []struct {
		name string
		set  func(*lab.Config)
		// portsHeld: the fix moves TIME-WAIT to the client, whose two
		// ports it then holds: requests fail there (no SYN is sent), no
		// more than without.
		portsHeld bool
	}{
		// The client picks from Linux's default range: no reuse within
		// the device's TIME-WAIT.
		{"wide-ports", func(c *lab.Config) { c.PortRange = "32768-60999" }, false},
		// The client's close is an RST: the device, in FIN-WAIT-2, takes
		// it and keeps no TIME-WAIT.
		{"linger0", func(c *lab.Config) { c.Linger0 = true }, false},
		// The device closes second: the client holds the TIME-WAIT and
		// picks the other port.
		{"close-second", func(c *lab.Config) { c.Close, c.WaitEOF = lab.CloseWaitClient, false }, true},
		// The device keeps TIME-WAIT shorter than the client's gap
		// between two uses of a port.
		{"short-time-wait", func(c *lab.Config) { c.TimeWait = 200 * time.Millisecond }, false},
	} {
		t.Run(fix.name, func(t *testing.T) {
			set := func(c *lab.Config) {
				reuse("3x1s", time.Second)(c)
				fix.set(c)
			}
			with, res := labRun(t, fmt.Sprintf("i%d", i), "reused-tuple", 0, set, nil)
			failed := res.Record.Results.RequestsFailed
			t.Logf("with %s: %s; the workload's failed requests %d", fix.name, totals(with), failed)
			if with.Totals.Duels != 0 || with.Totals.FailedRequests != 0 {
				t.Errorf("with %s: %d duels, %d failed requests; want none", fix.name, with.Totals.Duels, with.Totals.FailedRequests)
			}
			if (!fix.portsHeld && failed != 0) || failed > base.Record.Results.RequestsFailed {
				t.Errorf("with %s: the workload's failed requests %d (without: %d)", fix.name, failed, base.Record.Results.RequestsFailed)
			}
		})
	}
}

// TestClientSysctlsLeaveTheReuseDuel: the client's TIME-WAIT sysctls act
// on state the reuse duel does not involve (the client holds no TIME-WAIT
// there, and lwIP sends no timestamps for tcp_tw_reuse to check): with
// each, the duel the workload shows without a fix is still there. A
// negative answer, measured so that the README's table stays true.
func TestClientSysctlsLeaveTheReuseDuel(t *testing.T) {
	roottest.Require(t)
	for i, fix := range []struct{ name, key, value string }{
		{"rfc1337", "net.ipv4.tcp_rfc1337", "1"},
		{"tw-reuse", "net.ipv4.tcp_tw_reuse", "1"},
		{"timestamps", "net.ipv4.tcp_timestamps", "0"},
	} {
		t.Run(fix.name, func(t *testing.T) {
			set := func(c *lab.Config) {
				reuse("3x1s", time.Second)(c)
				c.Sysctls = map[string]string{fix.key: fix.value}
			}
			with, res := labRun(t, fmt.Sprintf("s%d", i), "reused-tuple", 0, set, nil)
			t.Logf("with %s=%s: %s", fix.key, fix.value, totals(with))
			if got := res.Record.Workload.Sysctls[fix.key]; got != fix.value {
				t.Fatalf("the run's client had %s=%q, want %q", fix.key, got, fix.value)
			}
			if with.Totals.Duels == 0 || with.Totals.TimeWaitReuses == 0 || with.Totals.IgnoredRSTs == 0 {
				t.Errorf("with %s: %d duels, %d TIME_WAIT reuses, %d ignored RSTs; the README says it leaves the duel", fix.name, with.Totals.Duels, with.Totals.TimeWaitReuses, with.Totals.IgnoredRSTs)
			}
		})
	}
}

// TestFinalAckRepairEndsTheLostFinAckDuel: every client ACK of the
// device's FIN is dropped (lost-fin-acks): without the repair the device
// retransmits its FIN into the client's TIME-WAIT, whose re-ACKs are lost
// again, a duel per connection; with it the first retransmission is
// answered in the client's name and no duel starts.
func TestFinalAckRepairEndsTheLostFinAckDuel(t *testing.T) {
	roottest.Require(t)
	set := func(c *lab.Config) {
		s, _ := lab.ParseSchedule("1x500ms")
		c.Schedule, c.Quiet = s, 6*time.Second
	}
	without, _ := labRun(t, "j", "lost-fin-acks", 0, set, nil)
	with, res := labRun(t, "k", "lost-fin-acks", mitigate.Set(0).With(mitigate.FinalAckRepair, true), set, nil)
	t.Logf("without: %s", totals(without))
	t.Logf("with:    %s", totals(with))
	if without.Totals.Duels == 0 {
		t.Fatalf("without the repair: no duel: the workload does not show the mechanism")
	}
	if with.Totals.Duels != 0 || with.Totals.FailedRequests > without.Totals.FailedRequests || res.Record.Results.RequestsFailed != 0 {
		t.Errorf("with the repair: %d duels, %d failed requests (without %d), the workload's failed %d; want no duel and no failure",
			with.Totals.Duels, with.Totals.FailedRequests, without.Totals.FailedRequests, res.Record.Results.RequestsFailed)
	}
	if with.Totals.CleanCloses != with.Totals.Connections {
		t.Errorf("with the repair: %d of %d connections closed cleanly, want all", with.Totals.CleanCloses, with.Totals.Connections)
	}
}

// TestFinResetEndsTheBusyCloseDuel: the device takes in no ACK of its own
// FIN (busy-close): without a fix its FIN and Linux's TIME-WAIT re-ACKs
// ping-pong; with fin-reset the first retransmission gets the exact RST,
// lwIP takes it, frees the pcb and no duel starts.
func TestFinResetEndsTheBusyCloseDuel(t *testing.T) {
	roottest.Require(t)
	set := func(c *lab.Config) {
		s, _ := lab.ParseSchedule("1x500ms")
		c.Schedule, c.Quiet, c.BusyClose = s, 6*time.Second, true
	}
	without, _ := labRun(t, "l", "busy-close", 0, set, nil)
	with, res := labRun(t, "m", "busy-close", mitigate.Set(0).With(mitigate.FinReset, true), set, nil)
	t.Logf("without: %s", totals(without))
	t.Logf("with:    %s", totals(with))
	if without.Totals.Duels == 0 {
		t.Fatalf("without the reset: no duel: the workload does not show the mechanism")
	}
	if with.Totals.Duels != 0 || with.Totals.FailedRequests > without.Totals.FailedRequests || res.Record.Results.RequestsFailed != 0 {
		t.Errorf("with the reset: %d duels, %d failed requests (without %d), the workload's failed %d; want no duel and no failure",
			with.Totals.Duels, with.Totals.FailedRequests, without.Totals.FailedRequests, res.Record.Results.RequestsFailed)
	}
	if d := res.DeviceStatus; d.Active != 0 {
		t.Errorf("with the reset: the device holds %d active pcbs at the end, want 0", d.Active)
	}
}

// TestLargePoolEndsThePoolKills: eight requests at once against the
// ESP8266's five pcbs (pool-exhausted): the device kills pcbs with RSTs
// and requests fail (no duel: its mechanism is the pool); without a limit
// none does.
func TestLargePoolEndsThePoolKills(t *testing.T) {
	roottest.Require(t)
	set := func(pool int) func(*lab.Config) {
		return func(c *lab.Config) {
			s, _ := lab.ParseSchedule("7x20ms")
			c.Schedule, c.Concurrency, c.Quiet, c.Pool = s, 8, time.Second, pool
		}
	}
	without, base := labRun(t, "n", "pool-exhausted", 0, set(5), nil)
	with, res := labRun(t, "o", "pool-exhausted", 0, set(-1), nil)
	t.Logf("without: %s; the workload's failed requests %d", totals(without), base.Record.Results.RequestsFailed)
	t.Logf("with:    %s; the workload's failed requests %d", totals(with), res.Record.Results.RequestsFailed)
	if base.Record.Results.RequestsFailed == 0 || without.Totals.RSTs == 0 {
		t.Fatalf("with 5 pcbs: no failed request or no RST: the workload does not show the mechanism")
	}
	if res.Record.Results.RequestsFailed != 0 || with.Totals.RSTs != 0 || with.Totals.Duels > without.Totals.Duels {
		t.Errorf("without a limit: %d failed requests, %d RSTs, %d duels; want none", res.Record.Results.RequestsFailed, with.Totals.RSTs, with.Totals.Duels)
	}
}

// TestFinalAckRepairClosesTheDevice: the client's first ACK of the
// device's FIN is dropped (lost-final-ack) and the client keeps no
// TIME-WAIT: without the repair the retransmitted FIN meets a closed
// socket and the device is reset; with it the device's FIN is answered in
// the client's name and every connection closes cleanly, with no RST.
func TestFinalAckRepairClosesTheDevice(t *testing.T) {
	roottest.Require(t)
	set := func(c *lab.Config) {
		s, _ := lab.ParseSchedule("2x500ms")
		c.Schedule, c.Quiet = s, 3*time.Second
		c.Sysctls = map[string]string{"net.ipv4.tcp_max_tw_buckets": "0"}
	}
	without, _ := labRun(t, "c", "lost-final-ack", 0, set, nil)
	with, _ := labRun(t, "d", "lost-final-ack", mitigate.Set(0).With(mitigate.FinalAckRepair, true), set, nil)
	t.Logf("without: %s", totals(without))
	t.Logf("with:    %s", totals(with))
	if without.Totals.RSTs == 0 || without.Totals.CleanCloses == without.Totals.Connections {
		t.Fatalf("without the repair: %d RSTs, %d of %d clean: the workload does not show the mechanism", without.Totals.RSTs, without.Totals.CleanCloses, without.Totals.Connections)
	}
	if with.Totals.RSTs != 0 || with.Totals.CleanCloses != with.Totals.Connections || with.Totals.Injected == 0 {
		t.Errorf("with the repair: %d RSTs, %d of %d clean, %d injected; want 0 RSTs, all clean, ACKs injected", with.Totals.RSTs, with.Totals.CleanCloses, with.Totals.Connections, with.Totals.Injected)
	}
	if with.Totals.Duels != 0 || with.Totals.FailedRequests > without.Totals.FailedRequests {
		t.Errorf("with the repair: %d duels, %d failed requests (without: %d)", with.Totals.Duels, with.Totals.FailedRequests, without.Totals.FailedRequests)
	}
}

// TestLiveSwitch: timewait-guard on, off, on during one run of the reuse
// workload. No packet is lost (every queued packet has its verdict record,
// the kernel dropped none), the log holds each switch, and the analysis
// cut at the switches finds the duels only while the guard was off.
func TestLiveSwitch(t *testing.T) {
	roottest.Require(t)
	var errs []error
	during := func(e *lab.Engine) {
		// Wait for the workload's first segments, then switch.
		deadline := time.Now().Add(30 * time.Second)
		for n, _ := e.Counts(); n == 0; n, _ = e.Counts() {
			if time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("no segment within 30 s"))
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(1500 * time.Millisecond)
		errs = append(errs, e.SetMitigation("timewait-guard", false))
		time.Sleep(2500 * time.Millisecond)
		errs = append(errs, e.SetMitigation("timewait-guard", true))
	}
	rep, res := labRun(t, "e", "reused-tuple", mitigate.Set(0).With(mitigate.TimewaitGuard, true), reuse("10x400ms", 2500*time.Millisecond), during)
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	log := filepath.Join(res.Dir, lab.FileVerdicts)
	verdicts, sum := readLog(t, log)
	if sum["kernel_queue_dropped"] != 0 || sum["kernel_user_dropped"] != 0 || sum["lost"] != 0 || sum["decider_panics"] != 0 {
		t.Errorf("summary %v: want no kernel drop, no lost record, no panic", sum)
	}
	if sum["packets"] == 0 || uint64(verdicts) != sum["packets"] {
		t.Errorf("%d verdict records for %d queued packets: want one each", verdicts, sum["packets"])
	}
	sw, err := analysis.ReadSwitches(log)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range sw {
		got = append(got, fmt.Sprintf("%s %v", s.Name, s.On))
	}
	if want := "timewait-guard true, timewait-guard false, timewait-guard true"; strings.Join(got, ", ") != want {
		t.Fatalf("switches in the log: %s; want %s", strings.Join(got, ", "), want)
	}
	split := analysis.SplitReport(rep, sw)
	var b strings.Builder
	analysis.WriteSplitText(&b, split)
	t.Logf("%s\n%s", totals(rep), b.String())
	if len(split.Phases) != 3 {
		t.Fatalf("%d phases, want 3 (on, off, on)", len(split.Phases))
	}
	on, off, again := split.Phases[0], split.Phases[1], split.Phases[2]
	if len(on.Mitigations) != 1 || len(off.Mitigations) != 0 || len(again.Mitigations) != 1 {
		t.Errorf("phases' mitigations %v, %v, %v; want [timewait-guard], [], [timewait-guard]", on.Mitigations, off.Mitigations, again.Mitigations)
	}
	if on.Duels != 0 || again.Duels != 0 {
		t.Errorf("duels with the guard on: %d before the switch off, %d after the switch on; want 0", on.Duels, again.Duels)
	}
	if off.Duels == 0 {
		t.Errorf("no duel while the guard was off: the switch did nothing")
	}
}

// readLog counts a verdict log's verdict records and returns its summary.
func readLog(t *testing.T, path string) (int, map[string]uint64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	sum := map[string]uint64{}
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		switch rec["kind"] {
		case "verdict":
			n++
		case "summary":
			for k, v := range rec {
				if x, ok := v.(float64); ok {
					sum[k] = uint64(x)
				}
			}
		}
	}
	return n, sum
}
