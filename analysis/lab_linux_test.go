package analysis

import (
	"context"
	"errors"
	"flag"
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

	"github.com/closeduel/closeduel/internal/benchtest"
	"github.com/closeduel/closeduel/internal/roottest"
	"github.com/closeduel/closeduel/netns"
	"github.com/closeduel/closeduel/topology"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// -capture regenerates the lab captures in testdata/ (root, takes about
// 20 s). testdata/README.md says how each is made.
var captureFlag = flag.Bool("capture", false, "regenerate the lab captures in testdata/ (needs root)")

const (
	labClient = "192.168.100.1"
	labDevice = "192.168.100.99"
	labPort   = 8080
)

// labBench is a Linux client and a Linux "device" on the topology bridge,
// with tcpdump on br0.
type labBench struct {
	t    *testing.T
	topo *topology.Topology
}

func newLabBench(t *testing.T, tag string) *labBench {
	t.Helper()
	roottest.Require(t)
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Fatalf("tcpdump is needed to capture: %v", err)
	}
	name := fmt.Sprintf("an%s%d", tag, os.Getpid()%10000)
	return &labBench{t: t, topo: benchtest.Topology(t, name)}
}

// sysctl sets a sysctl inside a namespace.
func (b *labBench) sysctl(ns, key, value string) {
	b.t.Helper()
	err := netns.Do(ns, func() error {
		return os.WriteFile(filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/")), []byte(value), 0o644)
	})
	if err != nil {
		b.t.Fatalf("sysctl %s=%s in %s: %v", key, value, ns, err)
	}
}

func (b *labBench) run(ns string, argv ...string) {
	b.t.Helper()
	if err := netns.Run(context.Background(), ns, argv...); err != nil {
		b.t.Fatal(err)
	}
}

// listen starts a server in the device namespace; serve handles each
// connection.
func (b *labBench) listen(serve func(net.Conn)) {
	b.t.Helper()
	benchtest.Serve(b.t, b.topo.Device, net.JoinHostPort(labDevice, fmt.Sprint(labPort)), serve)
}

// dial connects from the client namespace, from localPort when not 0.
func (b *labBench) dial(localPort int, timeout time.Duration) (net.Conn, error) {
	var conn net.Conn
	err := netns.Do(b.topo.Client, func() (err error) {
		d := net.Dialer{Timeout: timeout}
		if localPort != 0 {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(labClient), Port: localPort}
			d.Control = func(_, _ string, rc syscall.RawConn) error {
				var serr error
				rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1) })
				return serr
			}
		}
		conn, err = d.Dial("tcp4", net.JoinHostPort(labDevice, fmt.Sprint(labPort)))
		return err
	})
	return conn, err
}

// capture runs tcpdump on br0 into path until the returned stop is called.
func (b *labBench) capture(path string) (stop func()) {
	b.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := netns.Command(ctx, b.topo.Bridge, "tcpdump", "-i", topology.BridgeName, "-w", path, "-s", "128", "-U", "-n", "tcp")
	var stderr benchtest.Buffer
	cmd.Stderr = &stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	if err := cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(stderr.String(), "listening on") {
		if time.Now().After(deadline) {
			cancel()
			cmd.Wait()
			b.t.Fatalf("tcpdump did not start: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	var once sync.Once
	stop = func() {
		once.Do(func() {
			time.Sleep(300 * time.Millisecond)
			cancel()
			cmd.Wait()
		})
	}
	b.t.Cleanup(stop)
	return stop
}

// headServer answers one request line with a short response and waits for
// the client to close first, as an HTTP/1.1 server does for HEAD.
func headServer(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 512)
	if _, err := c.Read(buf); err != nil {
		return
	}
	c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, c)
}

// headRequest is one request of the workload: connect, HEAD, read the
// answer, close first. beforeClose runs on the socket just before close.
func (b *labBench) headRequest(beforeClose func(net.Conn)) error {
	c, err := b.dial(0, 3*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write([]byte("HEAD / HTTP/1.1\r\nHost: device\r\n\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 512)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Read(buf); err != nil {
		return err
	}
	if beforeClose != nil {
		beforeClose(c)
	}
	return nil
}

// makeCleanChurn: 20 HEAD requests, one connection each, 50 ms apart.
func makeCleanChurn(t *testing.T, path string) {
	b := newLabBench(t, "c")
	b.listen(headServer)
	stop := b.capture(path)
	for i := range 20 {
		if err := b.headRequest(nil); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	stop()
}

// makeLostFinalAck: 10 HEAD requests whose final ACK the bridge drops.
// The client marks its socket with TTL 63 just before close, so its FIN
// and final ACK carry it; iptables drops pure ACKs with TTL 63. The client
// keeps no TIME_WAIT (tcp_max_tw_buckets=0), so the device's retransmitted
// FIN meets a freed socket and gets an RST.
func makeLostFinalAck(t *testing.T, path string) {
	b := newLabBench(t, "l")
	b.sysctl(b.topo.Client, "net.ipv4.tcp_max_tw_buckets", "0")
	b.run(b.topo.Bridge, "iptables", "-A", "FORWARD", "-s", labClient, "-p", "tcp",
		"--tcp-flags", "SYN,ACK,FIN,RST", "ACK", "-m", "ttl", "--ttl-eq", "63",
		"-m", "length", "--length", "0:80", "-j", "DROP")
	b.listen(headServer)
	stop := b.capture(path)
	markTTL := func(c net.Conn) {
		rc, err := c.(*net.TCPConn).SyscallConn()
		if err == nil {
			rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, 63) })
		}
	}
	for i := range 10 {
		if err := b.headRequest(markTTL); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The device retransmits its FIN after about 200 ms.
	time.Sleep(1500 * time.Millisecond)
	stop()
}

// makeTimeWaitReuse: the device closes first and holds TIME_WAIT; the
// client reconnects from the same port with an ISN behind what the device
// has received, so the device answers the SYN with a stale ACK; the
// client answers that with RST, which the device ignores (tcp_rfc1337=1,
// as lwIP does), and the client retransmits its SYN: a duel until the
// client gives up (tcp_syn_retries=2).
func makeTimeWaitReuse(t *testing.T, path string) {
	b := newLabBench(t, "t")
	// Jumbo frames keep the bulk transfer to a few hundred segments.
	for _, ns := range []string{b.topo.Client, b.topo.Device} {
		b.run(ns, "ip", "link", "set", topology.HostIface, "mtu", "65000")
	}
	for _, p := range []string{topology.ClientPort, topology.DevicePort, topology.BridgeName} {
		b.run(b.topo.Bridge, "ip", "link", "set", p, "mtu", "65000")
	}
	b.sysctl(b.topo.Client, "net.ipv4.tcp_timestamps", "0")
	b.sysctl(b.topo.Client, "net.ipv4.tcp_syn_retries", "2")
	b.sysctl(b.topo.Device, "net.ipv4.tcp_rfc1337", "1")
	const bulk = 32 << 20
	b.listen(func(c net.Conn) {
		// Read the bulk, then close first: the device holds TIME_WAIT.
		io.CopyN(io.Discard, c, bulk)
		c.Close()
	})
	stop := b.capture(path)
	const port = 40123
	c, err := b.dial(port, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(make([]byte, bulk)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatal(err)
	}
	c.Close()
	time.Sleep(20 * time.Millisecond)
	c2, err := b.dial(port, 20*time.Second)
	if err == nil {
		c2.Close()
		t.Fatal("the reconnect went through: the device accepted the SYN in TIME_WAIT")
	}
	if !errors.Is(err, syscall.ETIMEDOUT) && !strings.Contains(err.Error(), "timed out") {
		t.Logf("reconnect failed with %v (expected a timeout)", err)
	}
	stop()
}

var labCaptures = []struct {
	name string
	make func(*testing.T, string)
}{
	{"linux-clean-churn", makeCleanChurn},
	{"linux-lost-final-ack", makeLostFinalAck},
	{"linux-time-wait-reuse", makeTimeWaitReuse},
}

// TestMakeLabCaptures regenerates testdata/<name>.pcap with -capture.
func TestMakeLabCaptures(t *testing.T) {
	if !*captureFlag {
		t.Skip("run with -capture to regenerate the lab captures (root)")
	}
	for _, lc := range labCaptures {
		t.Run(lc.name, func(t *testing.T) {
			lc.make(t, filepath.Join("testdata", lc.name+".pcap"))
		})
	}
}

// TestLabCapturesReproduce makes each lab capture again with the real
// stacks and checks that it yields what the committed one does (the
// figures that do not depend on timing) and agrees with tshark.
func TestLabCapturesReproduce(t *testing.T) {
	roottest.Require(t)
	if testing.Short() {
		t.Skip("skipped in -short mode: takes about 20 s")
	}
	for _, lc := range labCaptures {
		t.Run(lc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), lc.name+".pcap")
			t.Cleanup(func() { keepOnFailure(t, p) })
			lc.make(t, p)
			r := analyzeFiles(t, Config{}, p)
			want := knownAnswers[lc.name]
			got := outcomeOf(r)
			got.Close, got.Closer, got.History, got.Causes, got.Turns = nil, nil, nil, nil, nil
			if lc.name == "linux-time-wait-reuse" {
				// How many SYNs the client sends before it gives up, and
				// whether the bulk transfer retransmits, vary with timing.
				if got.SYNRetrans < 2 || len(r.Duels) != 1 || r.Duels[0].Cause != CauseHeldTuple || r.Duels[0].Turns < 4 {
					t.Errorf("SYN retransmissions %d, duels %+v: want at least 2 and one %s duel with 4 turns or more", got.SYNRetrans, r.Duels, CauseHeldTuple)
				}
				want.Retrans, want.SYNRetrans, want.RSTs, want.Ignored, want.DuelSegments = 0, 0, 0, 0, 0
				got.Retrans, got.SYNRetrans, got.RSTs, got.Ignored, got.DuelSegments = 0, 0, 0, 0, 0
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-committed +made now):\n%s", diff)
			}
			if _, err := exec.LookPath("tshark"); err == nil {
				streams, retrans, rsts := tsharkCounts(t, p)
				if diff := cmp.Diff([]int{streams, retrans, rsts}, []int{r.Totals.Connections, r.Totals.Retransmissions, r.Totals.RSTs}); diff != "" {
					t.Errorf("[streams retransmissions RSTs] (-tshark +closeduel):\n%s", diff)
				}
				t.Logf("tshark: %d streams, %d retransmissions, %d RSTs", streams, retrans, rsts)
			}
		})
	}
}

// keepOnFailure copies a capture of a failed test out of its temporary
// directory, which the test removes, and prints where.
func keepOnFailure(t *testing.T, path string) {
	if !t.Failed() {
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Logf("capture not kept: %v", err)
		return
	}
	dir, err := os.MkdirTemp("", "closeduel-lab-")
	if err == nil {
		kept := filepath.Join(dir, filepath.Base(path))
		if err = os.WriteFile(kept, data, 0o644); err == nil {
			t.Logf("capture kept: %s", kept)
			return
		}
	}
	t.Logf("capture not kept: %v", err)
}
