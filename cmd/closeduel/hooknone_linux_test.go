package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/closeduel/closeduel/internal/roottest"
	"github.com/closeduel/closeduel/netns"
)

// TestHookNoneRecipe installs the rules closeduel run --hook none prints,
// by hand, with iptables-nft and with iptables-legacy, checks that the
// experiment's traffic is queued and other traffic is not, and that the
// printed removal lines leave no rule behind.
func TestHookNoneRecipe(t *testing.T) {
	roottest.Require(t)
	bin := buildBinary(t)
	for i, backend := range []struct{ name, v4, v6 string }{
		{"iptables-nft", "iptables-nft", "ip6tables-nft"},
		{"iptables-legacy", "iptables-legacy", "ip6tables-legacy"},
	} {
		t.Run(backend.name, func(t *testing.T) {
			if _, err := exec.LookPath(backend.v4); err != nil {
				t.Skipf("%s not installed", backend.v4)
			}
			b := buildBusyBridge(t, fmt.Sprintf("hn%d%d", os.Getpid()%10000, i))
			serveTCP(t, b.Device, hostB+":80")
			serveTCP(t, b.D, otherD+":80")
			logPath := filepath.Join(t.TempDir(), "v.jsonl")
			run := startCloseduel(t, b.Bridge, "inline (rules left to you)", bin, "run", "--hook", "none", "--bridge", "br0",
				"--host", hostA, "--host", hostB, "--queue", "9", "--control", "off", "--log", logPath)
			out := run.out
			install, remove := recipeSections(out.String())
			if len(install) != 4 || len(remove) != 3 {
				t.Fatalf("recipe: %d install lines, %d remove lines:\n%s", len(install), len(remove), out.String())
			}
			runLines := func(lines []string) {
				for _, l := range lines {
					f := strings.Fields(l)
					switch f[0] {
					case "iptables":
						f[0] = backend.v4
					case "ip6tables":
						f[0] = backend.v6
					default:
						t.Fatalf("recipe line %q", l)
					}
					if err := netns.Run(context.Background(), b.Bridge, f...); err != nil {
						t.Fatalf("%s: %v", strings.Join(f, " "), err)
					}
				}
			}
			if i == 0 {
				docIsCurrent(t, out.String())
			}
			runLines(install)
			if ok := httpRequests(t, b.Client, hostB+":80", 3); ok != 3 {
				t.Errorf("A>B: %d of 3 requests", ok)
			}
			if ok := httpRequests(t, b.C, otherD+":80", 3); ok != 3 {
				t.Errorf("C>D: %d of 3 requests", ok)
			}
			time.Sleep(300 * time.Millisecond)
			runLines(remove)
			if rules, err := netns.Output(context.Background(), b.Bridge, backend.v4, "-w", "-S"); err != nil || strings.Contains(rules, "CLOSEDUEL") {
				t.Errorf("after the removal lines, %s -S: %v\n%s", backend.v4, err, rules)
			}
			run.Process.Signal(syscall.SIGTERM)
			if <-run.done; run.exitErr != nil {
				t.Fatalf("closeduel run: %v\n%s", run.exitErr, out.String())
			}
			data, err := os.ReadFile(logPath)
			if err != nil {
				t.Fatal(err)
			}
			verdicts := 0
			for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
				var rec map[string]any
				if json.Unmarshal([]byte(line), &rec) != nil || rec["kind"] != "verdict" {
					continue
				}
				verdicts++
				if rec["src"] != hostA && rec["src"] != hostB {
					t.Errorf("queued outside the experiment: %s", line)
				}
			}
			if verdicts < 3*8 {
				t.Errorf("%d verdicts for 3 A>B connections through %s rules, want >= 24", verdicts, backend.name)
			}
		})
	}
}

// recipeSections returns the indented iptables lines of --hook none's
// install and remove sections.
func recipeSections(out string) (install, remove []string) {
	var cur *[]string
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "--hook none: install"):
			cur = &install
		case strings.HasPrefix(l, "remove them"):
			cur = &remove
		case strings.HasPrefix(l, "  ") && cur != nil:
			*cur = append(*cur, strings.TrimSpace(l))
		default:
			cur = nil
		}
	}
	return install, remove
}

// docIsCurrent checks that docs/deploy.md shows the recipe as run prints
// it (there for --queue 7; here --queue 9).
func docIsCurrent(t *testing.T, out string) {
	t.Helper()
	doc, err := os.ReadFile("../../docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "  ") && !strings.HasSuffix(l, ":") {
			continue
		}
		l = strings.NewReplacer("CLOSEDUEL-9", "CLOSEDUEL-7", "queue-num 9", "queue-num 7", "forward9", "forward7", "queue num 9", "queue num 7").Replace(l)
		if !strings.Contains(string(doc), l+"\n") {
			t.Errorf("docs/deploy.md does not show the recipe line %q", l)
		}
	}
}
