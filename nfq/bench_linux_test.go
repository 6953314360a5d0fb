package nfq

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/closeduel/closeduel/bridgehook"
	"github.com/closeduel/closeduel/internal/benchtest"
	"github.com/closeduel/closeduel/internal/roottest"
	"github.com/closeduel/closeduel/netns"
	"github.com/closeduel/closeduel/segment"
	"github.com/closeduel/closeduel/topology"
	"github.com/closeduel/closeduel/vlanmark"
)

const (
	clientIP = "192.168.100.1"
	deviceIP = "192.168.100.99"
)

var benchSeq atomic.Int32

// testBench is a topology with the engine inline on its bridge.
type testBench struct {
	topo   *topology.Topology
	engine *Engine
	rec    *memRecorder
	cancel context.CancelFunc
	done   chan error
	hook   *bridgehook.Hook
	hookC  bridgehook.Config
}

// newBench builds a topology, installs the hook and runs the engine with
// the decider; everything is removed at cleanup, in the order closeduel run
// uses: rule out, engine drained, namespaces gone.
func newBench(t *testing.T, d Decider) *testBench {
	t.Helper()
	return newBenchWith(t, Config{Decider: d})
}

// newBenchWith is newBench with the engine's other settings from cfg
// (its queue, namespace and recorder are the bench's).
func newBenchWith(t *testing.T, cfg Config) *testBench {
	t.Helper()
	roottest.Require(t)
	ctx := context.Background()
	name := fmt.Sprintf("nq%d-%d", os.Getpid()%100000, benchSeq.Add(1))
	topo := benchtest.Topology(t, name) // removed after the engine stops
	b := &testBench{topo: topo, rec: &memRecorder{}, done: make(chan error, 1)}
	t.Cleanup(func() {
		if err := b.stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	var err error
	b.hookC = bridgehook.Config{NetNS: topo.Bridge, Queue: 7, Bridge: topology.BridgeName}
	b.hook, err = bridgehook.Install(ctx, b.hookC)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Queue, cfg.NetNS, cfg.Recorder = 7, topo.Bridge, b.rec
	b.engine, err = Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	b.cancel = cancel
	go func() { b.done <- b.engine.Run(rctx) }()
	return b
}

// stop removes the rule, drains and closes the engine. Safe twice.
func (b *testBench) stop() error {
	if b.cancel == nil {
		return nil
	}
	err := b.hook.Remove()
	b.cancel()
	b.cancel = nil
	if rerr := <-b.done; rerr != nil {
		err = rerr
	}
	if cerr := b.engine.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// listen opens a TCP listener in the device namespace.
func (b *testBench) listen(t *testing.T, port int) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := netns.Do(b.topo.Device, func() (err error) {
		ln, err = net.Listen("tcp4", fmt.Sprintf("%s:%d", deviceIP, port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// dial connects from the client namespace.
func (b *testBench) dial(port int) (net.Conn, error) {
	return benchtest.Dial(b.topo.Client, fmt.Sprintf("%s:%d", deviceIP, port), 3*time.Second)
}

// serveHTTPClose answers each request line block with a short 200 and
// closes first, as NodeMCU's server does.
func serveHTTPClose(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func(c net.Conn) {
			defer c.Close()
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if line == "\r\n" {
					break
				}
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		}(c)
	}
}

// headRequest sends one HEAD request on a new connection and reads the
// response to the end.
func (b *testBench) headRequest(port int) (string, error) {
	c, err := b.dial(port)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "HEAD / HTTP/1.1\r\nHost: device\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := io.ReadAll(c)
	return string(resp), err
}

// memRecorder keeps every event's essentials in memory.
type memRecorder struct {
	mu     sync.Mutex
	events []recorded
}

type recorded struct {
	Kind    EventKind
	Verdict Verdict
	Seg     segment.Segment
	TCP     bool
	Rule    string
	Data    []byte
	Held    time.Duration
	VLAN    vlanmark.Tag
}

func (m *memRecorder) Record(ev *Event) {
	m.mu.Lock()
	m.events = append(m.events, recorded{Kind: ev.Kind, Verdict: ev.Verdict, Seg: ev.Seg, TCP: ev.TCP, Rule: ev.Decision.Rule, Data: append([]byte(nil), ev.Data...), Held: ev.Left.Sub(ev.Arrived), VLAN: ev.VLAN})
	m.mu.Unlock()
}

func (m *memRecorder) snapshot() []recorded {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]recorded(nil), m.events...)
}

// macs returns the MAC addresses of the client's and the device's hosts.
func (b *testBench) macs(t *testing.T) (client, device net.HardwareAddr) {
	t.Helper()
	return macOf(t, b.topo.Client, topology.HostIface), macOf(t, b.topo.Device, topology.HostIface)
}

// macOf returns the MAC address of interface ifname in namespace ns.
func macOf(t *testing.T, ns, ifname string) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	if err := netns.Do(ns, func() error {
		ifc, err := net.InterfaceByName(ifname)
		if err == nil {
			mac = ifc.HardwareAddr
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return mac
}

// sendFrames sends whole Ethernet frames, as they are, from the client's
// interface to the MAC address dst through a packet socket: crafted
// segments no stack would send.
func (b *testBench) sendFrames(dst net.HardwareAddr, frames ...[]byte) error {
	return netns.Do(b.topo.Client, func() error {
		ifc, err := net.InterfaceByName(topology.HostIface)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		sa := &unix.SockaddrLinklayer{Ifindex: ifc.Index, Halen: 6}
		copy(sa.Addr[:], dst)
		for _, f := range frames {
			if err := unix.Sendto(fd, f, 0, sa); err != nil {
				return err
			}
		}
		return nil
	})
}

// wire captures frames on one interface of a namespace with AF_PACKET.
type wire struct {
	fd     int
	mu     sync.Mutex
	frames []wireFrame
	done   chan struct{}
}

type wireFrame struct {
	outgoing bool
	data     []byte
	at       time.Time
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// capture starts capturing every frame on ifname in namespace ns.
func capture(t *testing.T, ns, ifname string) *wire {
	t.Helper()
	w := &wire{done: make(chan struct{})}
	err := netns.Do(ns, func() error {
		ifc, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifc.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		tv := unix.Timeval{Usec: 50000}
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		// Room for bursts (a thousand released SYNs at once): a frame the
		// socket drops would look like one the engine lost.
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
		w.fd = fd
		return nil
	})
	if err != nil {
		t.Fatalf("capture on %s: %v", ifname, err)
	}
	stop := make(chan struct{})
	go func() {
		defer close(w.done)
		buf := make([]byte, 70000)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, from, err := unix.Recvfrom(w.fd, buf, 0)
			if err != nil {
				continue
			}
			ll, _ := from.(*unix.SockaddrLinklayer)
			f := wireFrame{data: append([]byte(nil), buf[:n]...), at: time.Now()}
			if ll != nil && ll.Pkttype == unix.PACKET_OUTGOING {
				f.outgoing = true
			}
			w.mu.Lock()
			w.frames = append(w.frames, f)
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-w.done
		unix.Close(w.fd)
	})
	return w
}

// drops returns how many frames the capture socket dropped so far (its
// receive buffer was full).
func (w *wire) drops() uint32 {
	st, err := unix.GetsockoptTpacketStats(w.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return 0
	}
	return st.Drops
}

// segments decodes the TCP segments captured so far.
func (w *wire) segments(t *testing.T) []wireSegment {
	t.Helper()
	dec, err := segment.NewDecoder(layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []wireSegment
	for _, f := range w.frames {
		var s segment.Segment
		if dec.Decode(f.data, &s) == nil {
			out = append(out, wireSegment{Seg: s, IP: f.data[segment.EthernetHeaderLen:], At: f.at})
		}
	}
	return out
}

type wireSegment struct {
	Seg segment.Segment
	IP  []byte
	At  time.Time
}

// waitQuiet waits until no frame arrived for d (at most 5 s).
func (w *wire) waitQuiet(d time.Duration) {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		var last time.Time
		if n := len(w.frames); n > 0 {
			last = w.frames[n-1].at
		}
		w.mu.Unlock()
		if time.Since(last) >= d {
			return
		}
		time.Sleep(d / 4)
	}
}

// key identifies a segment for multiset comparisons.
func key(s *segment.Segment) string {
	return fmt.Sprintf("%v>%v %v seq=%d ack=%d len=%d", s.Src, s.Dst, s.Flags, s.Seq, s.Ack, s.PayloadLen)
}

func mustAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
