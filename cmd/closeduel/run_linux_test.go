package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/closeduel/closeduel/bridgehook"
	"github.com/closeduel/closeduel/internal/roottest"
	"github.com/closeduel/closeduel/netns"
	"github.com/closeduel/closeduel/topology"
)

// built is the closeduel binary the tests share: built once per test
// binary run (a link takes seconds), removed by TestMain.
var built struct {
	once      sync.Once
	dir, path string
	err       error
}

// buildBinary builds closeduel once per test binary run and returns its
// path.
func buildBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "closeduel-test-"); built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "closeduel")
		if out, err := exec.Command("go", "build", "-o", built.path, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

// removeBuiltBinary removes what buildBinary built.
func removeBuiltBinary() {
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
}

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
	topo, err := topology.Build(ctx, topology.Config{Name: fmt.Sprintf("cm%d", os.Getpid()%100000)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { topo.Close() })

	var ln net.Listener
	if err := netns.Do(topo.Device, func() (err error) {
		ln, err = net.Listen("tcp4", "192.168.100.99:80")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					l, err := r.ReadString('\n')
					if err != nil || l == "\r\n" {
						break
					}
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
			}(c)
		}
	}()

	dir := t.TempDir()
	logPath, pcapPath := filepath.Join(dir, "v.jsonl"), filepath.Join(dir, "c.pcapng")
	cmd := netns.Command(ctx, topo.Bridge, bin, "run", "--bridge", "br0", "--log", logPath, "--pcap", pcapPath)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until run says it is inline: it prints that line only once the
	// whole chain and the jump to it are in (a chain alone is not enough:
	// traffic passes it by until the jump is inserted).
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "inline (iptables chain") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("closeduel run was not inline within 5 s:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	const requests = 5
	for i := 0; i < requests; i++ {
		var c net.Conn
		if err := netns.Do(topo.Client, func() (err error) {
			c, err = net.DialTimeout("tcp4", "192.168.100.99:80", 3*time.Second)
			return err
		}); err != nil {
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
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("closeduel run: %v\n%s", err, out.String())
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

// syncBuffer is a strings.Builder the child process writes to while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
