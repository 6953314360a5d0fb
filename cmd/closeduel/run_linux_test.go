package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/closeduel/closeduel/bridgehook"
	"github.com/closeduel/closeduel/internal/benchtest"
	"github.com/closeduel/closeduel/internal/roottest"
)

// TestRunAsAUserWould runs the built binary inline between two namespaces,
// makes HTTP requests through it, stops it with SIGTERM and checks the
// verdict log, the pcapng comments (through tshark) and that no rule is left.
func TestRunAsAUserWould(t *testing.T) {
	roottest.Require(t)
	if _, err := exec.LookPath("tshark"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tshark is needed (apt-get install tshark)")
		}
		t.Skip("tshark not installed")
	}
	bin := buildBinary(t)
	ctx := context.Background()
	topo := newBench(t, "cm")
	serveTCP(t, topo.Device, hostB+":80")

	dir := t.TempDir()
	logPath, pcapPath := filepath.Join(dir, "v.jsonl"), filepath.Join(dir, "c.pcapng")
	started := time.Now()
	run := startRun(t, bin, topo.Bridge, filepath.Join(dir, "ctl.sock"), "--log", logPath, "--pcap", pcapPath)
	if d := time.Since(started); d > 5*time.Second {
		t.Fatalf("closeduel run was inline only %v after it started, want within 5 s:\n%s", d.Round(time.Millisecond), run.out.String())
	}
	out := run.out
	const requests = 5
	for i := 0; i < requests; i++ {
		c, err := benchtest.Dial(topo.Client, "192.168.100.99:80", 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(3 * time.Second))
		io.WriteString(c, "HEAD / HTTP/1.1\r\nHost: d\r\n\r\n")
		resp, _ := io.ReadAll(c)
		c.Close()
		if !strings.HasPrefix(string(resp), "HTTP/1.1 200") {
			t.Fatalf("request %d through closeduel: %q", i, resp)
		}
	}
	time.Sleep(300 * time.Millisecond)
	run.Process.Signal(syscall.SIGTERM)
	if <-run.done; run.exitErr != nil {
		t.Fatalf("closeduel run: %v\n%s", run.exitErr, out.String())
	}
	if left, err := bridgehook.Leftovers(ctx, topo.Bridge); err != nil || len(left) != 0 {
		t.Fatalf("after exit: rules left %q (%v)", left, err)
	}

	// The verdict log: one verdict record per segment, all accepted.
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var verdicts, summaries int
	var summaryPackets float64
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("bad log line %q: %v", line, err)
		}
		switch rec["kind"] {
		case "verdict":
			verdicts++
			if rec["verdict"] != "accept" {
				t.Errorf("observe-only run logged %v", rec)
			}
		case "summary":
			summaries++
			summaryPackets = rec["packets"].(float64)
		}
	}
	if verdicts < requests*8 || summaries != 1 || int(summaryPackets) != verdicts {
		t.Fatalf("log: %d verdicts, %d summaries (packets %v); want >= %d verdicts and a summary that agrees", verdicts, summaries, summaryPackets, requests*8)
	}
	// The pcapng: tshark shows a comment on every frame.
	tsh, err := exec.Command("tshark", "-r", pcapPath, "-T", "fields", "-e", "frame.comment").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(tsh)), "\n")
	if len(lines) != verdicts {
		t.Fatalf("tshark shows %d frames, the log %d verdicts", len(lines), verdicts)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "closeduel verdict=accept action=pass") {
			t.Fatalf("frame comment %q, want closeduel verdict=accept action=pass ...", l)
		}
	}
	for _, want := range []string{"summary after", "packets        " + fmt.Sprint(verdicts), "lost 0"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary does not say %q:\n%s", want, out.String())
		}
	}
}
