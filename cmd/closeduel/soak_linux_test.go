package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/closeduel/closeduel/bridgehook"
	"github.com/closeduel/closeduel/control"
	"github.com/closeduel/closeduel/internal/roottest"
	"github.com/closeduel/closeduel/netns"
	"github.com/closeduel/closeduel/rules"
)

// soakMix is the soak's own experiment: every kind of action that keeps or
// sends packets (hold, delay, duplicate, rewrite, random drop), so leaks of
// holds or timers would show.
const soakMix = `experiment: soak-mix
about: Every action that keeps or sends packets, a little of each.
hosts: { client: 192.168.100.1, device: 192.168.100.99 }
ports: [80]
seed: 7
rules:
  - name: hold-syn-ack
    when: { from: device, has: [SYN, ACK], probability: 20% }
    do: hold-until-next
  - name: delay-data
    when: { from: client, has: [PSH], probability: 30% }
    do: { delay: 20ms, jitter: 10ms }
  - name: dup-fin
    when: { from: device, has: [FIN], probability: 30% }
    do: { duplicate: 2, gap: 5ms }
  - name: drop-some-acks
    when: { from: client, has: [ACK], none: [SYN, FIN, RST, PSH], probability: 5% }
    do: drop
`

// TestSoak runs closeduel run inline on a lab up bench (Linux device) for
// CLOSEDUEL_SOAK (a duration such as 30m; the test is skipped without it):
// the seed's workload (one HTTP HEAD per new connection, 10 gaps of 1 s
// then 40 of 200 ms, over and over) plus four clients churning connections
// as fast as they are answered, while the rules cycle through the shipped
// experiments and soak-mix (a reload every 5 s, by ctl and SIGHUP in turn)
// and a rule is switched off and on every second. It samples the run's RSS,
// goroutines and heap and asserts they stay flat, that the verdict log has
// one verdict per packet the engine saw and a summary that agrees, that no
// held packet is left, and that no kernel state is left behind. With
// CLOSEDUEL_SOAK_OUT it writes the samples there as CSV.
func TestSoak(t *testing.T) {
	spec := os.Getenv("CLOSEDUEL_SOAK")
	if spec == "" {
		t.Skip("soak: set CLOSEDUEL_SOAK=30m to run it (not in CI)")
	}
	total, err := time.ParseDuration(spec)
	if err != nil {
		t.Fatalf("CLOSEDUEL_SOAK=%q: %v", spec, err)
	}
	roottest.Require(t)
	bin := buildBinary(t)
	ctx := context.Background()
	name := fmt.Sprintf("sk%d", os.Getpid()%100000)
	if out, err := exec.Command(bin, "lab", "up", "--name", name).CombinedOutput(); err != nil {
		t.Fatalf("lab up: %v\n%s", err, out)
	}
	benchDown := func() {
		if out, err := exec.Command(bin, "lab", "down", "--name", name).CombinedOutput(); err != nil {
			t.Errorf("lab down: %v\n%s", err, out)
		}
	}
	downOnce := sync.OnceFunc(benchDown)
	t.Cleanup(downOnce)
	clientNS, bridgeNS := "cd-"+name+"-client", "cd-"+name+"-bridge"

	// The rule set to cycle through.
	var set [][]byte
	for _, n := range []string{"observe-only", "lost-final-ack", "delayed-final-ack", "simultaneous-close", "device-fin-to-rst", "ack-storm"} {
		b, err := fs.ReadFile(rules.Library(), n+".yaml")
		if err != nil {
			t.Fatal(err)
		}
		set = append(set, b)
	}
	set = append(set, []byte(soakMix))
	for i, b := range set {
		if _, err := rules.Parse(fmt.Sprint("set ", i), b); err != nil {
			t.Fatalf("rule set %d: %v", i, err)
		}
	}

	dir := t.TempDir()
	rulesPath := filepath.Join(dir, "rules.yaml")
	writeRules := func(b []byte) {
		tmp := rulesPath + ".new"
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			t.Error(err)
			return
		}
		if err := os.Rename(tmp, rulesPath); err != nil {
			t.Error(err)
		}
	}
	writeRules([]byte(soakMix))
	logPath, sock := filepath.Join(dir, "v.jsonl"), filepath.Join(dir, "ctl.sock")
	run := startRun(t, bin, bridgeNS, sock, "--rules", rulesPath, "--log", logPath)
	out := run.out
	pid := run.Process.Pid // ip netns exec execs closeduel in place

	work, stopWork := context.WithTimeout(ctx, total)
	defer stopWork()
	var ok, failed atomic.Int64
	request := func() {
		var c net.Conn
		err := netns.Do(clientNS, func() (err error) {
			c, err = net.DialTimeout("tcp4", "192.168.100.99:80", 3*time.Second)
			return err
		})
		if err != nil {
			failed.Add(1)
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "HEAD / HTTP/1.1\r\nHost: d\r\n\r\n")
		line, _ := bufio.NewReader(c).ReadString('\n')
		if strings.HasPrefix(line, "HTTP/1.1 200") {
			ok.Add(1)
		} else {
			failed.Add(1)
		}
	}
	sleep := func(d time.Duration) bool {
		select {
		case <-work.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the seed's workload, over and over
		defer wg.Done()
		for {
			for _, step := range []struct {
				n   int
				gap time.Duration
			}{{10, time.Second}, {40, 200 * time.Millisecond}} {
				for range step.n {
					go request()
					if !sleep(step.gap) {
						return
					}
				}
			}
		}
	}()
	for range 4 { // churn
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sleep(20 * time.Millisecond) {
				request()
			}
		}()
	}
	var reloads, reloadErrs, toggles atomic.Int64
	wg.Add(1)
	go func() { // the rule set, cycled
		defer wg.Done()
		for i := 0; sleep(5 * time.Second); i++ {
			writeRules(set[i%len(set)])
			if i%2 == 0 {
				if _, err := control.Send(ctx, sock, []string{"reload"}); err != nil {
					reloadErrs.Add(1)
					t.Logf("reload: %v", err)
				}
			} else {
				syscall.Kill(pid, syscall.SIGHUP)
			}
			reloads.Add(1)
		}
	}()
	wg.Add(1)
	go func() { // a rule switched off and on
		defer wg.Done()
		for i := 0; sleep(time.Second); i++ {
			ans, err := control.Send(ctx, sock, []string{"rules"})
			if err != nil {
				continue
			}
			var names []string
			for _, l := range strings.Split(ans, "\n")[1:] {
				if f := strings.Fields(l); len(f) >= 2 {
					names = append(names, f[1])
				}
			}
			if len(names) == 0 {
				continue
			}
			verb := []string{"disable", "enable"}[i%2]
			if _, err := control.Send(ctx, sock, []string{verb, names[(i/2)%len(names)]}); err == nil {
				toggles.Add(1)
			}
		}
	}()

	// Samples.
	type sample struct {
		at                     time.Duration
		rssKB, heapKB          int
		goroutines             int
		packets, heldNow, reqs int64
	}
	var samples []sample
	every := max(total/60, time.Second)
	statusRE := regexp.MustCompile(`packets (\d+),.* held now (\d+),[\s\S]*goroutines (\d+), heap in use (\d+) kB`)
	start := time.Now()
	take := func() {
		s := sample{at: time.Since(start).Round(time.Second), rssKB: rssKB(pid), reqs: ok.Load() + failed.Load()}
		if ans, err := control.Send(ctx, sock, []string{"status"}); err == nil {
			if m := statusRE.FindStringSubmatch(ans); m != nil {
				s.packets, _ = strconv.ParseInt(m[1], 10, 64)
				s.heldNow, _ = strconv.ParseInt(m[2], 10, 64)
				s.goroutines, _ = strconv.Atoi(m[3])
				s.heapKB, _ = strconv.Atoi(m[4])
			}
		}
		samples = append(samples, s)
		t.Logf("soak %8v  rss %6d kB  heap %6d kB  goroutines %4d  packets %9d  held now %4d  requests %7d",
			s.at, s.rssKB, s.heapKB, s.goroutines, s.packets, s.heldNow, s.reqs)
	}
	take()
	for sleep(every) {
		take()
	}
	wg.Wait()
	time.Sleep(3 * time.Second) // the last holds and delays end
	take()
	t.Logf("requests ok %d, failed %d (the rules drop and reset some); reloads %d (%d refused), toggles %d",
		ok.Load(), failed.Load(), reloads.Load(), reloadErrs.Load(), toggles.Load())
	if p := os.Getenv("CLOSEDUEL_SOAK_OUT"); p != "" {
		var b strings.Builder
		b.WriteString("seconds,rss_kb,heap_kb,goroutines,packets,held_now,requests\n")
		for _, s := range samples {
			fmt.Fprintf(&b, "%d,%d,%d,%d,%d,%d,%d\n", int(s.at.Seconds()), s.rssKB, s.heapKB, s.goroutines, s.packets, s.heldNow, s.reqs)
		}
		os.WriteFile(p, []byte(b.String()), 0o644)
	}

	syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-run.done:
		if run.exitErr != nil {
			t.Errorf("closeduel run: %v", run.exitErr)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("closeduel run still running 20 s after SIGTERM:\n%s", tail(out.String(), 2000))
	}

	// Flat: after the first tenth (warm-up), RSS grows by less than half
	// and 16 MB, goroutines by less than 20.
	warm := samples[len(samples)/10]
	last := samples[len(samples)-1]
	if last.rssKB > warm.rssKB*3/2+16<<10 {
		t.Errorf("RSS grew from %d kB (at %v) to %d kB", warm.rssKB, warm.at, last.rssKB)
	}
	if last.goroutines > warm.goroutines+20 {
		t.Errorf("goroutines grew from %d (at %v) to %d", warm.goroutines, warm.at, last.goroutines)
	}
	if last.heldNow != 0 {
		t.Errorf("%d packets still held after the workload", last.heldNow)
	}

	// The log: one verdict per packet seen, a summary that agrees, nothing
	// lost, every hold released.
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var verdicts, ruleRecs int64
	var summary map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("bad log line %q: %v", sc.Text(), err)
		}
		switch rec["kind"] {
		case "verdict":
			verdicts++
		case "rules":
			ruleRecs++
		case "summary":
			summary = rec
		}
	}
	if summary == nil {
		t.Fatal("no summary record in the log")
	}
	num := func(k string) int64 { v, _ := summary[k].(float64); return int64(v) }
	t.Logf("log: %d verdict records, %d rules records; summary packets %d, held %d, released %d, hold_overflow %d, lost %d",
		verdicts, ruleRecs, num("packets"), num("held"), num("released"), num("hold_overflow"), num("lost"))
	if verdicts != num("packets") || verdicts == 0 {
		t.Errorf("%d verdict records, summary says %d packets", verdicts, num("packets"))
	}
	if num("held") != num("released") {
		t.Errorf("held %d, released %d", num("held"), num("released"))
	}
	if !strings.Contains(out.String(), "lost 0") {
		t.Errorf("the summary does not say log records lost 0:\n%s", tail(out.String(), 2000))
	}

	// No kernel state left: chain, bound queue, control socket, namespaces.
	if left, err := bridgehook.Leftovers(ctx, bridgeNS); err != nil || len(left) != 0 {
		t.Errorf("iptables rules left: %q (%v)", left, err)
	}
	if q, err := netns.Output(ctx, bridgeNS, "cat", "/proc/net/netfilter/nfnetlink_queue"); err != nil || strings.TrimSpace(q) != "" {
		t.Errorf("a queue is still bound in %s: %q (%v)", bridgeNS, q, err)
	}
	if _, err := os.Stat(sock); err == nil {
		t.Errorf("control socket %s left", sock)
	}
	downOnce()
	if left, _ := netns.List("cd-" + name + "-"); len(left) != 0 {
		t.Errorf("namespaces left: %q", left)
	}
}

// rssKB is VmRSS of process pid in kB (0 when it cannot be read).
func rssKB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
