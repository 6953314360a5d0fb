package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
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
	"github.com/closeduel/closeduel/netns"
	"github.com/closeduel/closeduel/topology"
)

// vlanJqQuery counts verdicts per VLAN, as docs/deploy.md shows it.
const vlanJqQuery = `jq -s -c 'map(select(.kind == "verdict")) | group_by(.vlan) | map({vlan: .[0].vlan, packets: length})'`

// TestVLANTagsInTheLogAndTheCapture runs closeduel with --vlan-tags, --log
// and --pcap on a bridge that carries one TCP flow tagged VLAN 10 (between
// second addresses of the client and the device, whose frames cross the
// bridge with the tag) and one untagged flow between the usual addresses.
// Every verdict record of the tagged flow has "vlan":10, none of the
// untagged flow has a vlan; tshark shows vlan.id 10 and the verdict
// comment on every frame of the tagged flow, no vlan.id on the others;
// closeduel analyze decodes the capture through the tag; and once the run
// is over, its chains and its nft table are gone.
func TestVLANTagsInTheLogAndTheCapture(t *testing.T) {
	roottest.Require(t)
	roottest.RequireTools(t, "tshark", "nft", "ethtool")
	bin := buildBinary(t)
	ctx := context.Background()
	topo := newBench(t, "vl")
	const vid = 10
	benchtest.TaggedHost(t, topo.Client, topology.HostIface, vid, netip.MustParsePrefix("10.77.0.1/24"))
	benchtest.TaggedHost(t, topo.Device, topology.HostIface, vid, netip.MustParsePrefix("10.77.0.2/24"))
	echo := func(c net.Conn) { io.Copy(c, c) }
	benchtest.Serve(t, topo.Device, "10.77.0.2:8080", echo)
	benchtest.Serve(t, topo.Device, "192.168.100.99:8081", echo)

	dir := t.TempDir()
	logPath, pcapPath := filepath.Join(dir, "v.jsonl"), filepath.Join(dir, "v.pcapng")
	run := startRun(t, bin, topo.Bridge, filepath.Join(dir, "ctl.sock"), "--vlan-tags", "--log", logPath, "--pcap", pcapPath)
	for _, addr := range []string{"10.77.0.2:8080", "192.168.100.99:8081"} {
		for i := range 3 {
			c, err := benchtest.Dial(topo.Client, addr, 3*time.Second)
			if err != nil {
				t.Fatalf("dial %s: %v\n%s", addr, err, run.out.String())
			}
			c.SetDeadline(time.Now().Add(3 * time.Second))
			msg := strings.Repeat("x", 100*(i+1))
			io.WriteString(c, msg)
			c.(*net.TCPConn).CloseWrite()
			got, _ := io.ReadAll(c)
			c.Close()
			if string(got) != msg {
				t.Fatalf("%s: echoed %d bytes, want %d", addr, len(got), len(msg))
			}
		}
	}
	time.Sleep(300 * time.Millisecond) // the last ACKs
	run.Process.Signal(syscall.SIGTERM)
	if <-run.done; run.exitErr != nil {
		t.Fatalf("closeduel run: %v\n%s", run.exitErr, run.out.String())
	}
	if left, err := bridgehook.Leftovers(ctx, topo.Bridge); err != nil || len(left) != 0 {
		t.Fatalf("after exit: left %q (%v)", left, err)
	}

	// The log: the tagged flow's records all carry VLAN 10, the untagged
	// flow's none.
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	tagged, untagged := 0, 0
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var rec struct {
			Kind         string
			Sport, Dport int
			VLAN         *int `json:"vlan"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("bad log line %q: %v", line, err)
		}
		if rec.Kind != "verdict" {
			continue
		}
		switch {
		case rec.Sport == 8080 || rec.Dport == 8080:
			tagged++
			if rec.VLAN == nil || *rec.VLAN != vid {
				t.Errorf("tagged flow, record without vlan %d: %s", vid, line)
			}
		case rec.Sport == 8081 || rec.Dport == 8081:
			untagged++
			if rec.VLAN != nil {
				t.Errorf("untagged flow, record with vlan: %s", line)
			}
		}
	}
	// Each connection has at least SYN, SYN+ACK, ACK, data, FINs, ACKs.
	if tagged < 3*8 || untagged < 3*8 {
		t.Fatalf("log: %d records of the tagged flow, %d of the untagged one; want >= 24 each", tagged, untagged)
	}
	t.Logf("log: %d verdicts of the VLAN %d flow, all with \"vlan\":%d; %d of the untagged flow, none", tagged, vid, vid, untagged)

	// docs/deploy.md's jq query: the verdicts per VLAN.
	if _, err := exec.LookPath("jq"); err == nil {
		doc, err := os.ReadFile("../../docs/deploy.md")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(doc), vlanJqQuery+" verdicts.jsonl") {
			t.Errorf("docs/deploy.md does not show the tested query %s", vlanJqQuery)
		}
		out, err := exec.Command("sh", "-c", vlanJqQuery+" "+logPath).Output()
		if err != nil {
			t.Fatalf("jq: %v", err)
		}
		want := fmt.Sprintf(`[{"vlan":null,"packets":%d},{"vlan":10,"packets":%d}]`, untagged, tagged)
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("%s:\n got %s\nwant %s", vlanJqQuery, got, want)
		}
	}

	// The capture, as tshark reads it.
	// Tagged frames carry the hosts' Ethernet addresses as closeduel
	// learned them: the source always (it comes with the queued packet),
	// the destination once that host has sent a frame (the first SYN goes
	// out before the device has: zero).
	macs := map[string]string{}
	for port, ns := range map[string]string{"8080": topo.Device, "other": topo.Client} {
		out, err := netns.Output(ctx, ns, "cat", "/sys/class/net/vt0/address")
		if err != nil {
			t.Fatal(err)
		}
		macs[port] = strings.TrimSpace(out)
	}
	cmd := exec.Command("tshark", "-r", pcapPath, "-T", "fields", "-e", "vlan.id", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "frame.comment", "-e", "eth.src", "-e", "eth.dst")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.Bytes())
	}
	ptagged, puntagged, unknownDst := 0, 0, 0
	for _, l := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		f := strings.Split(l, "\t")
		if len(f) != 6 || !strings.HasPrefix(f[3], "closeduel verdict=accept") {
			t.Fatalf("tshark line %q: want vlan.id, ports, a verdict comment and addresses", l)
		}
		switch {
		case f[1] == "8080" || f[2] == "8080":
			ptagged++
			if f[0] != "10" {
				t.Errorf("tagged flow: frame with vlan.id %q: %q", f[0], l)
			}
			src, dst := macs["other"], macs["8080"]
			if f[1] == "8080" {
				src, dst = dst, src
			}
			switch {
			case f[4] != src:
				t.Errorf("tagged flow: frame from %s, want %s: %q", f[4], src, l)
			case f[5] == "00:00:00:00:00:00":
				unknownDst++
			case f[5] != dst:
				t.Errorf("tagged flow: frame to %s, want %s: %q", f[5], dst, l)
			}
		case f[1] == "8081" || f[2] == "8081":
			puntagged++
			if f[0] != "" {
				t.Errorf("untagged flow: frame with vlan.id %q: %q", f[0], l)
			}
		}
	}
	if unknownDst > 1 {
		t.Errorf("%d tagged frames without a destination address, want at most the first SYN", unknownDst)
	}
	if ptagged != tagged || puntagged != untagged {
		t.Errorf("tshark: %d tagged and %d untagged frames, the log %d and %d", ptagged, puntagged, tagged, untagged)
	}

	// The analysis decodes through the tag: all six connections.
	an, err := exec.Command(bin, "analyze", "--json", pcapPath).Output()
	if err != nil {
		t.Fatalf("analyze: %v", err)
	}
	var rep struct {
		Connections []json.RawMessage `json:"connections"`
	}
	if err := json.Unmarshal(an, &rep); err != nil {
		t.Fatalf("analyze --json: %v\n%.500s", err, an)
	}
	if len(rep.Connections) != 6 {
		t.Errorf("analyze found %d connections, want 6 (3 tagged, 3 untagged)", len(rep.Connections))
	}
}
