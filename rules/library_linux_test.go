package rules_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/closeduel/closeduel/bridgehook"
	"github.com/closeduel/closeduel/internal/benchtest"
	"github.com/closeduel/closeduel/internal/roottest"
	"github.com/closeduel/closeduel/netns"
	"github.com/closeduel/closeduel/nfq"
	"github.com/closeduel/closeduel/rules"
	"github.com/closeduel/closeduel/segment"
	"github.com/closeduel/closeduel/topology"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"
)

// The shipped experiments against real stacks: for each, a fresh bench
// (topology.Build: client and device namespaces with Linux stacks, closeduel
// inline in the bridge namespace through NFQUEUE), an HTTP-like workload,
// and captures on both bridge ports. A frame from a host captured on its
// own port is what it sent; a frame to it captured there is what it
// received, after closeduel's verdict. Each test asserts on the wire what
// the experiment's about: line claims.

var (
	clientIP = netip.MustParseAddr("192.168.100.1")
	deviceIP = netip.MustParseAddr("192.168.100.99")
)

// frame is one captured TCP frame.
type frame struct {
	at  time.Time
	seg segment.Segment
	ip  []byte // the IP packet, to tell identical-looking segments apart
}

// bench is one experiment's running lab.
type bench struct {
	t    *testing.T
	topo *topology.Topology
	dec  *rules.Decider
	rec  *recorder
	mu   sync.Mutex
	caps map[string][]frame // by bridge port: c0 (client side), d0 (device side)
	stop func()             // stops engine and captures; idempotent
}

// recorder keeps the engine's verdict events.
type recorder struct {
	mu     sync.Mutex
	events []event
}

type event struct {
	kind          nfq.EventKind
	rule, action  string
	verdict       nfq.Verdict
	seg           segment.Segment
	tcp, modified bool
}

func (r *recorder) Record(ev *nfq.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := event{kind: ev.Kind, verdict: ev.Verdict, seg: ev.Seg, tcp: ev.TCP}
	if d := ev.Decision; d != nil {
		e.rule, e.action, e.modified = d.Rule, d.Action, d.Modified
	}
	r.events = append(r.events, e)
}

func (r *recorder) all() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event(nil), r.events...)
}

var benchSeq int

// startBench builds the lab for one experiment, with the device serving
// serve on 192.168.100.99:80 and sysctls applied in the client and device
// namespaces first.
func startBench(t *testing.T, experiment string, sysctls []string, serve func(net.Conn)) *bench {
	t.Helper()
	roottest.Require(t)
	benchSeq++
	ctx := context.Background()
	topo := benchtest.Topology(t, fmt.Sprintf("r%d%c", os.Getpid()%100000, 'a'+benchSeq%26))
	for _, ns := range []string{topo.Client, topo.Device} {
		for _, s := range sysctls {
			key, value, _ := strings.Cut(s, "=")
			if err := netns.Do(ns, func() error {
				return os.WriteFile("/proc/sys/"+strings.ReplaceAll(key, ".", "/"), []byte(value), 0o644)
			}); err != nil {
				t.Fatal(err)
			}
		}
	}

	benchtest.Serve(t, topo.Device, "192.168.100.99:80", serve)

	f, err := rules.LoadLibrary(experiment)
	if err != nil {
		t.Fatal(err)
	}
	b := &bench{t: t, topo: topo, dec: rules.NewDecider(f, rules.Options{}), rec: &recorder{}, caps: map[string][]frame{}}
	engine, err := nfq.Open(nfq.Config{Queue: 7, NetNS: topo.Bridge, Decider: b.dec, Recorder: b.rec})
	if err != nil {
		t.Fatal(err)
	}
	engineCtx, stopEngine := context.WithCancel(ctx)
	engineDone := make(chan error, 1)
	go func() { engineDone <- engine.Run(engineCtx) }()

	capCtx, stopCaps := context.WithCancel(ctx)
	var capsDone sync.WaitGroup
	for _, port := range []string{topology.ClientPort, topology.DevicePort} {
		dec, err := segment.NewDecoder(layers.LinkTypeEthernet)
		if err != nil {
			t.Fatal(err)
		}
		fd, err := openCapture(topo.Bridge, port)
		if err != nil {
			t.Fatal(err)
		}
		capsDone.Add(1)
		go func() {
			defer capsDone.Done()
			defer unix.Close(fd)
			readCapture(capCtx, fd, func(at time.Time, data []byte) {
				var s segment.Segment
				if dec.Decode(data, &s) != nil {
					return
				}
				ip := append([]byte(nil), data[segment.EthernetHeaderLen:]...)
				b.mu.Lock()
				b.caps[port] = append(b.caps[port], frame{at: at, seg: s, ip: ip})
				b.mu.Unlock()
			})
		}()
	}

	hook, err := bridgehook.Install(ctx, bridgehook.Config{NetNS: topo.Bridge, Queue: 7, Bridge: topology.BridgeName})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	b.stop = func() {
		once.Do(func() {
			if err := hook.Remove(); err != nil {
				t.Error(err)
			}
			stopEngine()
			if err := <-engineDone; err != nil {
				t.Errorf("engine: %v", err)
			}
			if err := engine.Close(); err != nil {
				t.Error(err)
			}
			stopCaps()
			capsDone.Wait()
		})
	}
	t.Cleanup(b.stop)
	return b
}

// openCapture opens an AF_PACKET socket on iface in namespace ns that sees
// the frames the port receives and sends, with kernel timestamps.
func openCapture(ns, iface string) (int, error) {
	fd := -1
	err := netns.Do(ns, func() error {
		ifc, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		proto := int(uint16(unix.ETH_P_ALL)<<8 | uint16(unix.ETH_P_ALL)>>8)
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto); err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifc.Index}); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			return err
		}
		tv := unix.Timeval{Usec: 50_000}
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	if err != nil && fd >= 0 {
		unix.Close(fd)
	}
	return fd, err
}

// readCapture hands every frame to fn until ctx is done.
func readCapture(ctx context.Context, fd int, fn func(time.Time, []byte)) {
	buf, oob := make([]byte, 65536), make([]byte, 128)
	for ctx.Err() == nil {
		n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, 0)
		if err != nil {
			continue // timeout or interrupted: look at ctx again
		}
		at := time.Now()
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, m := range msgs {
				if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= 16 {
					ts := (*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
					at = time.Unix(ts.Sec, ts.Nsec)
				}
			}
		}
		fn(at, buf[:n])
	}
}

// dial connects from the client namespace, from local port lport when
// not zero (with SO_REUSEADDR).
func (b *bench) dial(lport int) *net.TCPConn {
	b.t.Helper()
	d := net.Dialer{Timeout: 3 * time.Second}
	if lport != 0 {
		d.LocalAddr = &net.TCPAddr{IP: net.IPv4(192, 168, 100, 1), Port: lport}
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
			})
			return errors.Join(err, serr)
		}
	}
	var c net.Conn
	if err := netns.Do(b.topo.Client, func() (err error) {
		c, err = d.Dial("tcp4", "192.168.100.99:80")
		return err
	}); err != nil {
		b.t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c.(*net.TCPConn)
}

const request = "HEAD / HTTP/1.1\r\nHost: device\r\n\r\n"
const response = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

// serveThenClose reads a request, answers, waits, and closes: the device
// closes first.
func serveThenClose(wait time.Duration) func(net.Conn) {
	return func(c net.Conn) {
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if l == "\r\n" {
				break
			}
		}
		io.WriteString(c, response)
		time.Sleep(wait)
	}
}

// readHead reads up to the end of the response head.
func readHead(c net.Conn) error {
	r := bufio.NewReader(c)
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if l == "\r\n" {
			return nil
		}
	}
}

// finish stops capturing after settle and returns the frames on a port.
func (b *bench) finish(settle time.Duration) {
	time.Sleep(settle)
	b.stop()
}

// on returns the frames captured on port sent by from, in order, for the
// connection whose client port is cport (0: every connection).
func (b *bench) on(port string, from netip.Addr, cport uint16) []frame {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []frame
	for _, f := range b.caps[port] {
		if f.seg.Src.Addr() != from {
			continue
		}
		p := f.seg.Src.Port()
		if from == deviceIP {
			p = f.seg.Dst.Port()
		}
		if cport == 0 || p == cport {
			out = append(out, f)
		}
	}
	return out
}

// clientPorts returns the client ports of the connections seen.
func (b *bench) clientPorts() []uint16 {
	seen := map[uint16]bool{}
	for _, f := range b.on(topology.ClientPort, clientIP, 0) {
		seen[f.seg.Src.Port()] = true
	}
	var out []uint16
	for p := range seen {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func count(fs []frame, pred func(*segment.Segment) bool) int {
	n := 0
	for i := range fs {
		if pred(&fs[i].seg) {
			n++
		}
	}
	return n
}

func first(fs []frame, pred func(*segment.Segment) bool) (frame, bool) {
	for _, f := range fs {
		if pred(&f.seg) {
			return f, true
		}
	}
	return frame{}, false
}

func hasFIN(s *segment.Segment) bool { return s.Flags&segment.FIN != 0 && s.Flags&segment.RST == 0 }
func hasRST(s *segment.Segment) bool { return s.Flags&segment.RST != 0 }

// deviceFin returns the sequence number of the device's FIN in a
// connection, as the device sent it.
func (b *bench) deviceFin(cport uint16) (segment.Seq, bool) {
	f, ok := first(b.on(topology.DevicePort, deviceIP, cport), hasFIN)
	return f.seg.End().Add(^uint32(0)), ok
}

func acks(fin segment.Seq) func(*segment.Segment) bool {
	return func(s *segment.Segment) bool {
		return s.Flags&segment.ACK != 0 && s.Flags&segment.RST == 0 && fin.LessThan(s.Ack)
	}
}

func contains(fs []frame, ip []byte) bool {
	for _, f := range fs {
		if bytes.Equal(f.ip, ip) {
			return true
		}
	}
	return false
}

func (b *bench) hits(rule string) uint64 {
	for _, r := range b.dec.Rules() {
		if r.Name == rule {
			return r.Hits
		}
	}
	b.t.Fatalf("no rule %s", rule)
	return 0
}

// requests makes n connections: each sends a request and reads to EOF
// (the device closes first), then closes.
func (b *bench) requests(n int, lport int) []error {
	var errs []error
	for range n {
		c := b.dial(lport)
		io.WriteString(c, request)
		_, err := io.ReadAll(c)
		c.Close()
		errs = append(errs, err)
		time.Sleep(100 * time.Millisecond)
	}
	return errs
}

const conns = 3

func TestLibraryObserveOnlyChangesNothing(t *testing.T) {
	b := startBench(t, "observe-only", nil, serveThenClose(0))
	for i, err := range b.requests(conns, 0) {
		if err != nil {
			t.Errorf("request %d: %v", i, err)
		}
	}
	b.finish(500 * time.Millisecond)
	// Every frame each host sent reached the other, byte for byte.
	for _, dir := range []struct {
		from     netip.Addr
		out, in  string
		fromName string
	}{{clientIP, topology.ClientPort, topology.DevicePort, "client"}, {deviceIP, topology.DevicePort, topology.ClientPort, "device"}} {
		sent, got := b.on(dir.out, dir.from, 0), b.on(dir.in, dir.from, 0)
		if len(sent) == 0 || len(sent) != len(got) {
			t.Errorf("%s sent %d frames, %d arrived", dir.fromName, len(sent), len(got))
			continue
		}
		for i := range sent {
			if !bytes.Equal(sent[i].ip, got[i].ip) {
				t.Errorf("%s's frame %d changed on the way", dir.fromName, i)
			}
		}
	}
	for _, ev := range b.rec.all() {
		if ev.kind != nfq.EventVerdict || ev.verdict != nfq.Accept || ev.modified {
			t.Errorf("event %+v: observe-only must accept everything unchanged", ev)
		}
	}
	if h := b.hits("fin"); h != 2*conns {
		t.Errorf("rule fin marked %d segments, want %d (one FIN each way per connection)", h, 2*conns)
	}
}

func TestLibraryLostFinalAck(t *testing.T) {
	b := startBench(t, "lost-final-ack", nil, serveThenClose(0))
	for i, err := range b.requests(conns, 0) {
		if err != nil {
			t.Errorf("request %d: %v", i, err)
		}
	}
	b.finish(1500 * time.Millisecond)
	ports := b.clientPorts()
	if len(ports) != conns {
		t.Fatalf("%d connections seen, want %d", len(ports), conns)
	}
	for _, p := range ports {
		fin, ok := b.deviceFin(p)
		if !ok {
			t.Errorf("connection %d: the device sent no FIN", p)
			continue
		}
		ack, ok := first(b.on(topology.ClientPort, clientIP, p), acks(fin))
		if !ok {
			t.Errorf("connection %d: the client never acknowledged the device's FIN", p)
			continue
		}
		if contains(b.on(topology.DevicePort, clientIP, p), ack.ip) {
			t.Errorf("connection %d: the client's first acknowledgment of the FIN (%v) reached the device", p, ack.seg.Flags)
		}
		// The claim: the device retransmits its FIN at least once.
		fins := count(b.on(topology.DevicePort, deviceIP, p), func(s *segment.Segment) bool { return hasFIN(s) && s.End().Add(^uint32(0)) == fin })
		if fins < 2 {
			t.Errorf("connection %d: the device sent its FIN %d times, want a retransmission", p, fins)
		}
	}
	if h := b.hits("drop-final-ack"); h < conns {
		t.Errorf("drop-final-ack hit %d times, want at least %d", h, conns)
	}
}

func TestLibraryDelayedFinalAck(t *testing.T) {
	b := startBench(t, "delayed-final-ack", nil, serveThenClose(0))
	for i, err := range b.requests(conns, 0) {
		if err != nil {
			t.Errorf("request %d: %v", i, err)
		}
	}
	b.finish(1500 * time.Millisecond)
	for _, p := range b.clientPorts() {
		fin, _ := b.deviceFin(p)
		ack, ok := first(b.on(topology.ClientPort, clientIP, p), acks(fin))
		if !ok {
			t.Errorf("connection %d: the client never acknowledged the device's FIN", p)
			continue
		}
		var arrived time.Time
		for _, f := range b.on(topology.DevicePort, clientIP, p) {
			if bytes.Equal(f.ip, ack.ip) {
				arrived = f.at
			}
		}
		if arrived.IsZero() {
			t.Errorf("connection %d: the delayed acknowledgment never arrived", p)
			continue
		}
		// 300 ms ± 50 ms, with a margin for the capture and the scheduler.
		if d := arrived.Sub(ack.at); d < 240*time.Millisecond || d > 400*time.Millisecond {
			t.Errorf("connection %d: the acknowledgment took %v from port to port, want 300ms ± 50ms", p, d)
		}
		// Linux's retransmission timer (at least 200 ms) runs out first.
		retrans, ok := first(b.on(topology.DevicePort, deviceIP, p)[1:], func(s *segment.Segment) bool { return hasFIN(s) && s.End().Add(^uint32(0)) == fin })
		if !ok || !retrans.at.Before(arrived) {
			t.Errorf("connection %d: the device did not retransmit its FIN before the delayed acknowledgment arrived", p)
		}
	}
}

func TestLibraryLostDeviceFin(t *testing.T) {
	b := startBench(t, "lost-device-fin", nil, serveThenClose(0))
	for i, err := range b.requests(conns, 0) {
		if err != nil {
			t.Errorf("request %d: %v", i, err)
		}
	}
	b.finish(1000 * time.Millisecond)
	for _, p := range b.clientPorts() {
		sent := b.on(topology.DevicePort, deviceIP, p)
		got := b.on(topology.ClientPort, deviceIP, p)
		first1, ok := first(sent, hasFIN)
		if !ok {
			t.Errorf("connection %d: no FIN from the device", p)
			continue
		}
		if contains(got, first1.ip) {
			t.Errorf("connection %d: the device's first FIN reached the client", p)
		}
		arrived, ok := first(got, hasFIN)
		if !ok {
			t.Errorf("connection %d: the client never got the device's FIN", p)
			continue
		}
		// What the client got is the retransmission: same sequence
		// number, later (not the same packet: checked above). Not a
		// whole retransmission timeout later: with the response's ACK
		// slow on a loaded machine, Linux's tail loss probe resends the
		// FIN after 2·SRTT (seen: 5.7 ms in a CI run).
		if arrived.seg.Seq != first1.seg.Seq || !arrived.at.After(first1.at) {
			t.Errorf("connection %d: the client's first FIN (seq %d, %v after the original) is not the retransmission of %d", p, arrived.seg.Seq, arrived.at.Sub(first1.at), first1.seg.Seq)
		}
	}
}

func TestLibraryDeviceFinToRst(t *testing.T) {
	b := startBench(t, "device-fin-to-rst", nil, serveThenClose(0))
	errs := b.requests(conns, 0)
	b.finish(1500 * time.Millisecond)
	for i, err := range errs {
		// The client's connection is reset, not closed.
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("request %d: reading to the end gave %v, want connection reset", i, err)
		}
	}
	for _, p := range b.clientPorts() {
		fin, ok := b.deviceFin(p)
		if !ok {
			t.Errorf("connection %d: the device sent no FIN", p)
			continue
		}
		got := b.on(topology.ClientPort, deviceIP, p)
		var sawRST bool
		for _, f := range got {
			if hasRST(&f.seg) && f.seg.Seq == fin {
				sawRST = true
				break
			}
			if hasFIN(&f.seg) {
				t.Errorf("connection %d: the client got a FIN before the RST", p)
				break
			}
		}
		if !sawRST {
			t.Errorf("connection %d: the client got no RST where the device sent its FIN", p)
		}
		// The device retransmits its FIN into a socket that no longer
		// exists and draws an RST.
		fins := count(b.on(topology.DevicePort, deviceIP, p), hasFIN)
		rsts := count(b.on(topology.DevicePort, clientIP, p), hasRST)
		if fins < 2 || rsts < 1 {
			t.Errorf("connection %d: the device sent %d FINs and got %d RSTs, want a retransmitted FIN answered by an RST", p, fins, rsts)
		}
	}
}

func TestLibraryClientRstLost(t *testing.T) {
	// The device waits before closing; the client aborts right after the
	// response (SO_LINGER 0), so its RST comes first.
	b := startBench(t, "client-rst-lost", nil, serveThenClose(300*time.Millisecond))
	for range conns {
		c := b.dial(0)
		io.WriteString(c, request)
		if err := readHead(c); err != nil {
			t.Fatal(err)
		}
		c.SetLinger(0)
		c.Close()
		time.Sleep(100 * time.Millisecond)
	}
	b.finish(800 * time.Millisecond)
	for _, p := range b.clientPorts() {
		sent := b.on(topology.ClientPort, clientIP, p)
		got := b.on(topology.DevicePort, clientIP, p)
		rst1, ok := first(sent, hasRST)
		if !ok {
			t.Errorf("connection %d: the client sent no RST", p)
			continue
		}
		if contains(got, rst1.ip) {
			t.Errorf("connection %d: the client's first RST reached the device", p)
		}
		// The device kept the connection: its FIN came later and drew a
		// second RST, which got through.
		fin, ok := first(b.on(topology.DevicePort, deviceIP, p), hasFIN)
		if !ok || !fin.at.After(rst1.at) {
			t.Errorf("connection %d: no FIN from the device after the lost RST", p)
			continue
		}
		if n := count(got, hasRST); n < 1 || count(sent, hasRST) != n+1 {
			t.Errorf("connection %d: the client sent %d RSTs and the device got %d, want one more sent than got", p, count(sent, hasRST), n)
		}
	}
}

func TestLibrarySimultaneousClose(t *testing.T) {
	b := startBench(t, "simultaneous-close", nil, serveThenClose(0))
	for range conns {
		c := b.dial(0)
		io.WriteString(c, request)
		if err := readHead(c); err != nil {
			t.Fatal(err)
		}
		c.Close() // without waiting for the device's FIN
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	// Both ends in TIME-WAIT, each for every connection.
	for _, ns := range []string{b.topo.Client, b.topo.Device} {
		out, err := netns.Output(context.Background(), ns, "ss", "-Htn", "state", "time-wait")
		if err != nil {
			t.Fatal(err)
		}
		var n int
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, ":80") {
				n++
			}
		}
		if n != conns {
			t.Errorf("%s holds %d sockets in TIME-WAIT, want %d:\n%s", ns, n, conns, out)
		}
	}
	b.finish(200 * time.Millisecond)
	for _, p := range b.clientPorts() {
		cfin, ok1 := first(b.on(topology.ClientPort, clientIP, p), hasFIN)
		dfin, ok2 := first(b.on(topology.ClientPort, deviceIP, p), hasFIN)
		if !ok1 || !ok2 {
			t.Errorf("connection %d: FINs client %v device %v", p, ok1, ok2)
			continue
		}
		// The FINs crossed: the client's left before the device's reached
		// it, and neither acknowledges the other.
		if !cfin.at.Before(dfin.at) {
			t.Errorf("connection %d: the device's FIN reached the client before the client sent its own", p)
		}
		if !cfin.seg.Ack.LessThan(dfin.seg.End()) || !dfin.seg.Ack.LessThan(cfin.seg.End()) {
			t.Errorf("connection %d: a FIN acknowledges the other (client FIN ack %d, device FIN ack %d)", p, cfin.seg.Ack, dfin.seg.Ack)
		}
	}
	if h := b.hits("hold-device-fin"); h != conns {
		t.Errorf("hold-device-fin hit %d times, want %d", h, conns)
	}
}

func TestLibraryReusedTuple(t *testing.T) {
	b := startBench(t, "reused-tuple", nil, serveThenClose(0))
	for i, err := range b.requests(conns, 40123) {
		if err != nil {
			t.Errorf("request %d from port 40123: %v", i, err)
		}
	}
	b.finish(300 * time.Millisecond)
	// Nothing is changed; every SYN after the first met the device's
	// TIME-WAIT and is marked, and so is the device's answer from it.
	for _, ev := range b.rec.all() {
		if ev.verdict != nfq.Accept || ev.modified {
			t.Errorf("event %+v: the experiment must change nothing", ev)
		}
	}
	if h := b.hits("syn-on-reused-tuple"); h != conns-1 {
		t.Errorf("syn-on-reused-tuple marked %d SYNs, want %d", h, conns-1)
	}
	if h := b.hits("device-answers-reused-syn"); h != conns-1 {
		t.Errorf("device-answers-reused-syn marked %d segments, want %d (Linux's TIME-WAIT answers a newer SYN with a SYN-ACK)", h, conns-1)
	}
	syns := count(b.on(topology.DevicePort, clientIP, 40123), func(s *segment.Segment) bool { return s.Flags == segment.SYN })
	if syns != conns {
		t.Errorf("%d SYNs from port 40123 reached the device, want %d", syns, conns)
	}
}

func TestLibraryAckStorm(t *testing.T) {
	// Linux answers at most one out-of-window segment per 500 ms unless
	// told otherwise; then the loop runs until the rule's limit.
	b := startBench(t, "ack-storm", []string{"net.ipv4.tcp_invalid_ratelimit=0"}, serveThenClose(2*time.Second))
	c := b.dial(0)
	io.WriteString(c, request)
	if err := readHead(c); err != nil {
		t.Fatal(err)
	}
	io.ReadAll(c)
	c.Close()
	b.finish(300 * time.Millisecond)
	if h := b.hits("ack-out-of-window"); h != 20 {
		t.Errorf("ack-out-of-window moved %d ACKs, want the limit, 20", h)
	}
	p := b.clientPorts()[0]
	pure := func(s *segment.Segment) bool { return s.Flags == segment.ACK && s.PayloadLen == 0 }
	// Each moved ACK arrives out of the receiver's window and draws an
	// ACK: both sides send about 10 pure ACKs while the connection idles.
	for _, side := range []struct {
		name string
		ip   netip.Addr
		port string
	}{{"client", clientIP, topology.ClientPort}, {"device", deviceIP, topology.DevicePort}} {
		sent := b.on(side.port, side.ip, p)
		if n := count(sent, pure); n < 10 {
			t.Errorf("the %s sent %d pure ACKs, want at least 10 in the storm", side.name, n)
		}
	}
	moved := 0
	for _, ev := range b.rec.all() {
		if ev.rule == "ack-out-of-window" && ev.modified {
			moved++
		}
	}
	if moved != 20 {
		t.Errorf("%d rewritten segments in the verdict events, want 20", moved)
	}
}
