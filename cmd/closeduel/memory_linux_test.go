package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/closeduel/closeduel/internal/roottest"
	"github.com/closeduel/closeduel/netns"
)

// manyConns tracks up to 100k connections and matches none of the
// traffic.
const manyConns = `experiment: many-conns
about: Track 100k connections at once; change nothing.
hosts: { client: 192.168.100.1, device: 192.168.100.99 }
tracker: { max-conns: 100000 }
rules:
  - name: never
    when: { has: [URG] }
    do: drop
`

// TestRSSWith100kConnections opens 100k connections through a running
// closeduel run, with its verdict log and pcapng, and bounds the process's
// peak resident memory (VmHWM) at 100 MiB. Each connection is a SYN from
// its own client port that the device's firewall drops unanswered, so the
// tracker holds all of them (SYN-SENT, quiet for less than the idle
// timeout) and the kernels keep no sockets; /metrics must count 100,000
// tracked connections (ctl status) before the memory is read.
func TestRSSWith100kConnections(t *testing.T) {
	roottest.Require(t)
	if testing.Short() {
		t.Skip("-short")
	}
	const n = 100_000
	bin := buildBinary(t)
	topo := newBench(t, "rss")
	ctx := context.Background()
	if err := netns.Run(ctx, topo.Device, "iptables", "-w", "-A", "INPUT", "-p", "tcp", "--dport", "9000:9001", "-j", "DROP"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rulesPath := filepath.Join(dir, "many.yaml")
	if err := os.WriteFile(rulesPath, []byte(manyConns), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "ctl.sock")
	run := startRun(t, bin, topo.Bridge, sock, "--rules", rulesPath,
		"--log", filepath.Join(dir, "v.jsonl"), "--pcap", filepath.Join(dir, "v.pcapng"))
	pid := run.Process.Pid // ip netns exec execs closeduel in place

	queued := queueBacklog(t, topo.Bridge)
	sendSYNs(t, topo.Client, netip.MustParseAddr("192.168.100.1"), netip.MustParseAddr("192.168.100.99"), n, queued)
	want := fmt.Sprintf("tracked connections %d ", n)
	var status string
	for deadline := time.Now().Add(20 * time.Second); ; {
		out, err := exec.Command(bin, "ctl", "--socket", sock, "status").CombinedOutput()
		if err != nil {
			t.Fatalf("ctl status: %v\n%s", err, out)
		}
		status = string(out)
		if strings.Contains(status, want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(status, want) {
		t.Fatalf("ctl status does not say %q:\n%s\n%s", want, status, run.out.String())
	}
	hwm, rss := procStatusKiB(t, pid, "VmHWM"), procStatusKiB(t, pid, "VmRSS")
	t.Logf("%d tracked connections, with --log and --pcap: VmHWM %.1f MiB, VmRSS %.1f MiB", n, float64(hwm)/1024, float64(rss)/1024)
	if hwm > 100<<10 {
		t.Errorf("peak resident memory %.1f MiB with %d tracked connections, want at most 100 MiB", float64(hwm)/1024, n)
	}
}

// sendSYNs sends n SYNs from src to dst through a raw socket made in
// namespace ns, each opening its own 4-tuple (client ports 10000-59999,
// device ports 9000 and 9001), in bursts of 256 while queued says fewer
// than 1024 packets wait in the kernel queue (so none overflows it).
func sendSYNs(t *testing.T, ns string, src, dst netip.Addr, n int, queued func() int) {
	t.Helper()
	var fd int
	if err := netns.Do(ns, func() (err error) {
		fd, err = syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	to := &syscall.SockaddrInet4{Addr: dst.As4()}
	var pkt [40]byte
	for i := range n {
		synSegment(pkt[:], src, dst, uint16(10000+i%50000), uint16(9000+i/50000), uint32(i)*7919)
		for {
			err := syscall.Sendto(fd, pkt[:], 0, to)
			if err == nil {
				break
			}
			if err != syscall.ENOBUFS && err != syscall.EAGAIN {
				t.Fatalf("send SYN %d: %v", i, err)
			}
			time.Sleep(time.Millisecond)
		}
		if i%256 == 255 {
			for queued() >= 1024 {
				time.Sleep(100 * time.Microsecond)
			}
		}
	}
}

// synSegment writes an IPv4 header and a TCP SYN with valid checksums
// into b (40 bytes).
func synSegment(b []byte, src, dst netip.Addr, sport, dport uint16, seq uint32) {
	s, d := src.As4(), dst.As4()
	clear(b)
	b[0], b[8], b[9] = 0x45, 64, syscall.IPPROTO_TCP
	binary.BigEndian.PutUint16(b[2:], 40)
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	binary.BigEndian.PutUint16(b[10:], checksum(b[:20], 0))
	tcp := b[20:]
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	tcp[12], tcp[13] = 5<<4, 0x02
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	pseudo := uint32(s[0])<<8 | uint32(s[1]) + uint32(s[2])<<8 | uint32(s[3]) +
		uint32(d[0])<<8 | uint32(d[1]) + uint32(d[2])<<8 | uint32(d[3]) + syscall.IPPROTO_TCP + 20
	binary.BigEndian.PutUint16(tcp[16:], checksum(tcp, pseudo))
}

// checksum is the Internet checksum of b, starting from sum.
func checksum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// queueBacklog returns a function that reports how many packets wait in
// the kernel's NFQUEUEs of namespace ns (queue_total, summed over the
// queues of /proc/net/netfilter/nfnetlink_queue, opened in ns).
func queueBacklog(t *testing.T, ns string) func() int {
	t.Helper()
	var f *os.File
	if err := netns.Do(ns, func() (err error) {
		f, err = os.Open("/proc/thread-self/net/netfilter/nfnetlink_queue")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	buf := make([]byte, 4096)
	return func() int {
		k, err := f.ReadAt(buf, 0)
		if err != nil && k == 0 {
			t.Fatalf("read nfnetlink_queue: %v", err)
		}
		total := 0
		for _, l := range strings.Split(string(buf[:k]), "\n") {
			if fs := strings.Fields(l); len(fs) > 2 {
				v, _ := strconv.Atoi(fs[2])
				total += v
			}
		}
		return total
	}
}

// procStatusKiB returns a kB field of /proc/pid/status.
func procStatusKiB(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			k, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			return k
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
