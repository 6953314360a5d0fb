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
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/closeduel/closeduel/bridgehook"
	"github.com/closeduel/closeduel/internal/benchtest"
	"github.com/closeduel/closeduel/internal/roottest"
	"github.com/closeduel/closeduel/netns"
	"github.com/closeduel/closeduel/topology"
)

// Addresses of the busy bridge: the experiment's two hosts (the
// topology's client A and device B) and two other hosts on the same
// bridge whose traffic closeduel must leave alone.
const (
	hostA  = "192.168.100.1"
	hostB  = "192.168.100.99"
	otherC = "192.168.100.3"
	otherD = "192.168.100.4"
)

// busyBridge is the topology plus two other hosts on its bridge.
type busyBridge struct {
	*topology.Topology
	C, D string // namespaces of the other hosts
}

func buildBusyBridge(t *testing.T, name string) *busyBridge {
	t.Helper()
	ctx := context.Background()
	topo, err := topology.Build(ctx, topology.Config{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	b := &busyBridge{Topology: topo, C: "cd-" + name + "-oc", D: "cd-" + name + "-od"}
	t.Cleanup(func() {
		netns.Delete(b.C)
		netns.Delete(b.D)
		topo.Close()
	})
	for _, o := range []struct{ ns, port, addr string }{{b.C, "oc0", otherC}, {b.D, "od0", otherD}} {
		if err := netns.Add(ctx, o.ns); err != nil {
			t.Fatal(err)
		}
		for _, step := range [][]string{
			{"", "ip", "-n", topo.Bridge, "link", "add", o.port, "type", "veth", "peer", "name", topology.HostIface, "netns", o.ns},
			{o.ns, "ip", "addr", "add", o.addr + "/24", "dev", topology.HostIface},
			{o.ns, "ip", "link", "set", topology.HostIface, "up"},
			{o.ns, "ip", "link", "set", "lo", "up"},
			{topo.Bridge, "ip", "link", "set", o.port, "master", topology.BridgeName},
			{topo.Bridge, "ip", "link", "set", o.port, "up"},
		} {
			if err := netns.Run(ctx, step[0], step[1:]...); err != nil {
				t.Fatal(err)
			}
		}
	}
	return b
}

// serveTCP answers every connection on addr in ns with an empty HTTP
// response and closes first (so the client acknowledges the server's FIN).
func serveTCP(t *testing.T, ns, addr string) {
	t.Helper()
	benchtest.Serve(t, ns, addr, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(c)
		for {
			l, err := r.ReadString('\n')
			if err != nil || l == "\r\n" {
				break
			}
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	})
}

// serveUDPEcho echoes every datagram on addr in ns.
func serveUDPEcho(t *testing.T, ns, addr string) {
	t.Helper()
	var pc net.PacketConn
	if err := netns.Do(ns, func() (err error) { pc, err = net.ListenPacket("udp4", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
}

// httpRequests makes n requests from ns to addr, each on a new
// connection, reading until the server's close; it returns how many got
// a 200.
func httpRequests(t *testing.T, ns, addr string, n int) int {
	t.Helper()
	ok := 0
	for i := 0; i < n; i++ {
		c, err := benchtest.Dial(ns, addr, 3*time.Second)
		if err != nil {
			t.Errorf("dial %s from %s: %v", addr, ns, err)
			continue
		}
		c.SetDeadline(time.Now().Add(3 * time.Second))
		io.WriteString(c, "HEAD / HTTP/1.1\r\nHost: d\r\n\r\n")
		resp, _ := io.ReadAll(c)
		c.Close()
		if strings.HasPrefix(string(resp), "HTTP/1.1 200") {
			ok++
		}
	}
	return ok
}

// udpEchoes sends n datagrams from ns to addr and returns how many came back.
func udpEchoes(t *testing.T, ns, addr string, n int) int {
	t.Helper()
	var c net.Conn
	if err := netns.Do(ns, func() (err error) { c, err = net.Dial("udp4", addr); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := 0
	buf := make([]byte, 64)
	for i := 0; i < n; i++ {
		fmt.Fprintf(c, "ping %d", i)
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if m, err := c.Read(buf); err == nil && string(buf[:m]) == fmt.Sprintf("ping %d", i) {
			got++
		}
	}
	return got
}

// pings sends n ICMP echo requests from ns to addr; it returns the replies.
func pings(t *testing.T, ns, addr string, n int) int {
	t.Helper()
	out, _ := netns.Output(context.Background(), ns, "ping", "-n", "-q", "-c", strconv.Itoa(n), "-i", "0.2", "-W", "2", addr)
	m := regexp.MustCompile(`(\d+) received`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("ping %s from %s: %q", addr, ns, out)
	}
	r, _ := strconv.Atoi(m[1])
	return r
}

// wireCapture runs tcpdump on a host's interface and returns a function
// that stops it and returns the packets it saw, one summary line each.
func wireCapture(t *testing.T, ns, filter string) func() []string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "wire.pcap")
	cmd := netns.Command(context.Background(), ns, "tcpdump", "-i", topology.HostIface, "-nn", "-U", "-w", out, filter)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "listening on") {
			break
		}
	}
	go io.Copy(io.Discard, stderr)
	return func() []string {
		time.Sleep(200 * time.Millisecond)
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
		txt, err := exec.Command("tcpdump", "-nn", "-r", out).Output()
		if err != nil {
			t.Fatalf("tcpdump -r: %v", err)
		}
		s := strings.TrimSpace(string(txt))
		if s == "" {
			return nil
		}
		return strings.Split(s, "\n")
	}
}

// scrapeIn fetches /metrics from addr inside ns (the socket is made there)
// and returns the samples by their full name with labels.
func scrapeIn(t *testing.T, ns, addr string) map[string]float64 {
	t.Helper()
	c, err := benchtest.Dial(ns, addr, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /metrics HTTP/1.0\r\nHost: m\r\n\r\n")
	body, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	head, text, _ := strings.Cut(string(body), "\r\n\r\n")
	if !strings.HasPrefix(head, "HTTP/1.0 200") {
		t.Fatalf("GET /metrics: %s", head)
	}
	m := map[string]float64{}
	for _, l := range strings.Split(text, "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", l, err)
		}
		m[l[:i]] = v
	}
	return m
}

// TestDeployOnABusyBridge is docs/deploy.md without systemd: closeduel run
// configured by the example environment file on a bridge that carries
// other traffic (TCP between other hosts and from a host of the
// experiment to another, UDP, ICMP). Only TCP between the two hosts is
// queued: the rest arrives on the wire and is absent from the verdict
// log. It runs with the unit's two capabilities only; ctl switches a rule
// through the control socket; /metrics is scraped and checked against the
// verdict log and the wire.
func TestDeployOnABusyBridge(t *testing.T) {
	roottest.Require(t)
	roottest.RequireTools(t, "tcpdump", "ping", "setpriv")
	bin := buildBinary(t)
	b := buildBusyBridge(t, fmt.Sprintf("dp%d", os.Getpid()%100000))
	serveTCP(t, b.Device, hostB+":80")
	serveTCP(t, b.D, otherD+":80")
	serveUDPEcho(t, b.Device, hostB+":7")
	serveUDPEcho(t, b.D, otherD+":7")

	// The service's environment file, with this test's paths.
	env := readKeyValues(t, "../../packaging/closeduel.env")
	dir := t.TempDir()
	logPath, pcapPath, sock := filepath.Join(dir, "verdicts.jsonl"), filepath.Join(dir, "capture.pcapng"), filepath.Join(dir, "ctl.sock")
	env["CLOSEDUEL_RULES"] = []string{"delayed-final-ack"}
	env["CLOSEDUEL_LOG"] = []string{logPath}
	env["CLOSEDUEL_PCAP"] = []string{pcapPath}
	env["CLOSEDUEL_METRICS"] = []string{"127.0.0.1:0"}
	env["CLOSEDUEL_LOG_FORMAT"] = []string{"json"}
	env["CLOSEDUEL_CONTROL"] = []string{sock}
	if env["CLOSEDUEL_BRIDGE"][0] != topology.BridgeName || env["CLOSEDUEL_HOSTS"][0] != hostA+","+hostB {
		t.Fatalf("the example environment file's bridge and hosts changed: %v %v", env["CLOSEDUEL_BRIDGE"], env["CLOSEDUEL_HOSTS"])
	}
	// As the unit runs it: root with only CAP_NET_ADMIN and CAP_NET_RAW
	// (bounding, inheritable and ambient sets) and no new privileges.
	caps := "-all,+net_admin,+net_raw"
	cmd := netns.Command(context.Background(), b.Bridge, "setpriv", "--bounding-set="+caps, "--inh-caps="+caps,
		"--ambient-caps="+caps, "--no-new-privs", bin, "run")
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v[0])
	}
	var stdout, stderr benchtest.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})

	// The JSON log says where the metrics are and when the run is inline.
	var metricsAddr string
	deadline := time.Now().Add(10 * time.Second)
	for inline := false; !inline || metricsAddr == ""; {
		if time.Now().After(deadline) {
			t.Fatalf("closeduel run was not inline with metrics within 10 s:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
		for _, line := range strings.Split(stderr.String(), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) != nil {
				continue
			}
			if a, ok := rec["addr"].(string); ok {
				metricsAddr = a
			}
			if msg, _ := rec["msg"].(string); strings.Contains(msg, "inline (iptables chain CLOSEDUEL-7 on br0") {
				inline = true
			}
		}
	}

	// The run holds exactly the unit's two capabilities (bits 12 and 13).
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"CapEff", "CapBnd", "CapAmb"} {
		if !regexp.MustCompile(`(?m)^` + k + `:\s+0000000000003000$`).Match(status) {
			t.Fatalf("closeduel run's %s is not CAP_NET_ADMIN+CAP_NET_RAW only:\n%s", k, status)
		}
	}

	// ctl against the run's socket: switch the rule off and on again.
	ctl := func(args ...string) string {
		c := exec.Command(bin, append([]string{"ctl"}, args...)...)
		c.Env = append(os.Environ(), "CLOSEDUEL_CONTROL="+sock)
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("closeduel ctl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	ctl("disable", "delay-final-ack")
	ctl("enable", "delay-final-ack")
	ctl("mitigation", "timewait-guard", "on")
	ctl("mitigation", "timewait-guard", "off")
	if st := ctl("status"); !strings.Contains(st, "experiment delayed-final-ack") || !strings.Contains(st, "on  delay-final-ack") {
		t.Fatalf("ctl status:\n%s", st)
	}

	stopB := wireCapture(t, b.Device, "tcp port 80")
	stopD := wireCapture(t, b.D, "")

	const requests, datagrams, echoes = 5, 20, 5
	if ok := httpRequests(t, b.Client, hostB+":80", requests); ok != requests {
		t.Errorf("A>B through closeduel: %d of %d requests ok", ok, requests)
	}
	if ok := httpRequests(t, b.C, otherD+":80", requests); ok != requests {
		t.Errorf("C>D TCP on the same bridge: %d of %d requests ok", ok, requests)
	}
	if ok := httpRequests(t, b.Client, otherD+":80", 3); ok != 3 {
		t.Errorf("A>D TCP (one end outside the experiment): %d of 3 requests ok", ok)
	}
	if n := udpEchoes(t, b.C, otherD+":7", datagrams); n != datagrams {
		t.Errorf("C>D UDP: %d of %d echoed", n, datagrams)
	}
	if n := udpEchoes(t, b.Client, hostB+":7", datagrams); n != datagrams {
		t.Errorf("A>B UDP: %d of %d echoed", n, datagrams)
	}
	if n := pings(t, b.C, otherD, echoes); n != echoes {
		t.Errorf("C>D ICMP: %d of %d replies", n, echoes)
	}
	if n := pings(t, b.Client, hostB, echoes); n != echoes {
		t.Errorf("A>B ICMP: %d of %d replies", n, echoes)
	}
	time.Sleep(600 * time.Millisecond) // the last delayed ACKs (300 ms ± 50) and the log's flush
	wireB, wireD := stopB(), stopD()
	metrics := scrapeIn(t, b.Bridge, metricsAddr)

	cmd.Process.Signal(syscall.SIGTERM)
	err = cmd.Wait()
	stopped = true
	if err != nil {
		t.Fatalf("closeduel run: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	if left, err := bridgehook.Leftovers(context.Background(), b.Bridge); err != nil || len(left) != 0 {
		t.Fatalf("after exit: rules left %q (%v)", left, err)
	}

	// The verdict log: only TCP between A and B port 80.
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var verdicts, accepted, delayed, toggles, mitigations, lost int
	byAction := map[string]int{}
	conns := map[float64]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		switch rec["kind"] {
		case "verdict":
			verdicts++
			src, dst := rec["src"], rec["dst"]
			if rec["tcp"] == false || !(src == hostA && dst == hostB || src == hostB && dst == hostA) ||
				(rec["sport"] != 80.0 && rec["dport"] != 80.0) {
				t.Errorf("queued traffic outside the experiment: %s", line)
			}
			if rec["verdict"] == "accept" {
				accepted++
			}
			a, _ := rec["action"].(string)
			byAction[a]++
			if rec["rule"] == "delay-final-ack" {
				delayed++
			}
			if c, ok := rec["conn"].(float64); ok {
				conns[c] = true
			}
		case "toggle":
			toggles++
		case "mitigation":
			mitigations++
		case "lost":
			lost++
		}
	}

	// The wire: every A<>B TCP packet was queued once; C and D's traffic
	// arrived (requests, echoes and pings above) without being queued.
	if verdicts != len(wireB) {
		t.Errorf("verdict log has %d verdicts, B's wire %d TCP port-80 packets (all between A and B)", verdicts, len(wireB))
	}
	var wireDTCP int
	for _, l := range wireD {
		if strings.Contains(l, otherD+".80") {
			wireDTCP++
		}
	}
	if wireDTCP < requests*2*4 { // C>D and A>D: at least 4 segments each way per connection
		t.Errorf("D's wire shows %d TCP port-80 packets for %d connections", wireDTCP, requests+3)
	}
	if verdicts < requests*8 || delayed < requests || len(conns) != requests || lost != 0 || toggles != 2 || mitigations != 2 {
		t.Errorf("log: %d verdicts, %d delayed, %d connections, %d lost records, %d toggles, %d mitigation switches; want >= %d, >= %d, %d, 0, 2, 2",
			verdicts, delayed, len(conns), lost, toggles, mitigations, requests*8, requests, requests)
	}

	// The analysis of the log, for the live analysis' figures.
	js, err := exec.Command(bin, "analyze", "--json", logPath).Output()
	if err != nil {
		t.Fatalf("closeduel analyze --json: %v", err)
	}
	var report struct {
		Totals struct {
			Connections, Duels, IgnoredRSTs int
		} `json:"totals"`
	}
	if err := json.Unmarshal(js, &report); err != nil {
		t.Fatal(err)
	}

	// /metrics against the log.
	for name, want := range map[string]int{
		`closeduel_packets_total`:                                                       verdicts,
		`closeduel_verdicts_total{verdict="accept"}`:                                    accepted,
		`closeduel_verdicts_total{verdict="drop"}`:                                      verdicts - accepted,
		`closeduel_actions_total{action="pass"}`:                                        byAction["pass"],
		`closeduel_actions_total{action="delay"}`:                                       byAction["delay"],
		`closeduel_held_packets_total`:                                                  delayed,
		`closeduel_released_packets_total`:                                              delayed,
		`closeduel_held_packets`:                                                        0,
		`closeduel_log_records_lost_total`:                                              lost,
		`closeduel_tracker_connections_total`:                                           len(conns),
		`closeduel_analysis_connections_total`:                                          report.Totals.Connections,
		`closeduel_duels_total`:                                                         report.Totals.Duels,
		`closeduel_packets_unparsed_total{reason="non_tcp"}`:                            0,
		`closeduel_kernel_queue_dropped_total{cause="queue_full"}`:                      0,
		`closeduel_rule_decisions_total{action="delay",rule="delay-final-ack"}`:         delayed,
		`closeduel_switches_total{kind="rule",name="delay-final-ack",state="off"}`:      1,
		`closeduel_mitigation_enabled{mitigation="timewait-guard"}`:                     0,
		`closeduel_switches_total{kind="mitigation",name="timewait-guard",state="on"}`:  mitigations / 2,
		`closeduel_switches_total{kind="mitigation",name="timewait-guard",state="off"}`: mitigations / 2,
		`closeduel_switches_total{kind="rule",name="delay-final-ack",state="on"}`:       1,
	} {
		got, ok := metrics[name]
		if !ok {
			t.Errorf("/metrics has no %s", name)
		} else if int(got) != want {
			t.Errorf("/metrics %s = %v, the verdict log says %d", name, got, want)
		}
	}
	t.Logf("A>B: %d verdicts (%d delayed), B's wire %d packets; D's wire %d packets, %d of them TCP port 80; metrics packets %v, duels %v (analyze: %d)",
		verdicts, delayed, len(wireB), len(wireD), wireDTCP, metrics["closeduel_packets_total"], metrics["closeduel_duels_total"], report.Totals.Duels)
}
