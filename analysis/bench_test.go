package analysis

import (
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/closeduel/closeduel/segment"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// writeChurn writes a synthetic capture of about n packets: HTTP-like
// connections of ten segments each (handshake, request, response, FIN
// both ways), 64 of them in flight at once, from 16 clients to one
// server, with a retransmitted response in one in thirty, a retransmitted
// FIN in one in fifty and an RST instead of the final ACK in one in a
// hundred. It returns the number of packets.
func writeChurn(tb testing.TB, path string, n int) int {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriterNanos(f)
	if err := w.WriteFileHeader(262144, layers.LinkTypeEthernet); err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	server := netip.AddrPortFrom(netip.MustParseAddr("192.168.100.99"), 80)
	payload := make([]byte, 200)
	buf := make([]byte, 0, 512)
	type live struct {
		c          netip.AddrPort
		step       int
		cseq, sseq uint32
	}
	const inFlight = 64
	conns := make([]live, inFlight)
	port := uint16(10000)
	next := func() live {
		port++
		if port < 10000 {
			port = 10000
		}
		ip := netip.AddrFrom4([4]byte{192, 168, 100, byte(1 + int(port)%16)})
		return live{c: netip.AddrPortFrom(ip, port), cseq: rng.Uint32(), sseq: rng.Uint32()}
	}
	for i := range conns {
		conns[i] = next()
	}
	t := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	written := 0
	emit := func(from, to netip.AddrPort, flags segment.Flags, seq, ack uint32, n int) {
		tmpl := segment.Template{Tuple: segment.Tuple{Src: from, Dst: to}, Flags: flags, Seq: segment.Seq(seq), Ack: segment.Seq(ack), Window: 64240}
		b, err := segment.Build(buf[:0], mac, mac, &tmpl)
		if err != nil {
			tb.Fatal(err)
		}
		if n > 0 {
			b = append(b, payload[:n]...)
			ip := b[segment.EthernetHeaderLen:]
			ip[2], ip[3] = byte(len(ip)>>8), byte(len(ip))
		}
		t = t.Add(time.Duration(50+rng.IntN(300)) * time.Microsecond)
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: t, CaptureLength: len(b), Length: len(b)}, b); err != nil {
			tb.Fatal(err)
		}
		written++
	}
	const A, PA, FA = segment.ACK, segment.PSH | segment.ACK, segment.FIN | segment.ACK
	for written < n {
		i := rng.IntN(inFlight)
		c := &conns[i]
		cs, ss := c.cseq, c.sseq
		switch c.step {
		case 0:
			emit(c.c, server, segment.SYN, cs, 0, 0)
		case 1:
			emit(server, c.c, segment.SYN|A, ss, cs+1, 0)
		case 2:
			emit(c.c, server, A, cs+1, ss+1, 0)
		case 3:
			emit(c.c, server, PA, cs+1, ss+1, 80)
		case 4:
			emit(server, c.c, A, ss+1, cs+81, 0)
		case 5:
			emit(server, c.c, PA, ss+1, cs+81, 200)
			if rng.IntN(30) == 0 {
				emit(server, c.c, PA, ss+1, cs+81, 200)
			}
		case 6:
			emit(c.c, server, FA, cs+81, ss+201, 0)
		case 7:
			emit(server, c.c, FA, ss+201, cs+82, 0)
			if rng.IntN(50) == 0 {
				emit(server, c.c, FA, ss+201, cs+82, 0)
			}
		case 8:
			if rng.IntN(100) == 0 {
				emit(c.c, server, segment.RST, cs+82, 0, 0)
			} else {
				emit(c.c, server, A, cs+82, ss+202, 0)
			}
		default:
			conns[i] = next()
			continue
		}
		c.step++
	}
	return written
}

// BenchmarkAnalyze measures the analysis of a 100,000-packet churn
// capture; -benchmem shows the allocations (per connection, not per
// packet).
func BenchmarkAnalyze(b *testing.B) {
	path := filepath.Join(b.TempDir(), "churn.pcap")
	n := writeChurn(b, path, 100_000)
	b.ResetTimer()
	for range b.N {
		if _, err := Analyze(context.Background(), Config{}, []string{path}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/packet")
}

// cpuTime returns the user+system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkVersusTshark times closeduel's analysis (in process) and
// tshark's two-pass TCP analysis (`tshark -2 -q -z conv,tcp`) of the same
// one-million-packet capture, interleaved, and reports both and their
// ratio, in wall time and in CPU time (user+system, which other load on
// the machine does not inflate). It fails when closeduel takes more than
// a tenth of tshark's CPU time.
// Run: go test ./analysis -run '^$' -bench VersusTshark -benchtime 2x
func BenchmarkVersusTshark(b *testing.B) {
	if _, err := exec.LookPath("tshark"); err != nil {
		b.Skip("tshark is not installed")
	}
	path := filepath.Join(b.TempDir(), "churn.pcap")
	n := writeChurn(b, path, 1_000_000)
	b.ResetTimer()
	var ours, theirs, oursCPU, theirsCPU time.Duration
	for range b.N {
		start, startCPU := time.Now(), cpuTime()
		r, err := Analyze(context.Background(), Config{}, []string{path})
		if err != nil {
			b.Fatal(err)
		}
		ours += time.Since(start)
		oursCPU += cpuTime() - startCPU
		if r.Totals.Segments != n {
			b.Fatalf("analysed %d segments of %d", r.Totals.Segments, n)
		}
		start = time.Now()
		cmd := exec.Command("tshark", "-r", path, "-2", "-q", "-z", "conv,tcp")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("tshark: %v: %s", err, out)
		}
		theirs += time.Since(start)
		theirsCPU += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	per := func(d time.Duration) float64 { return d.Seconds() / float64(b.N) }
	wall, cpu := ours.Seconds()/theirs.Seconds(), oursCPU.Seconds()/theirsCPU.Seconds()
	b.ReportMetric(per(ours), "closeduel-s")
	b.ReportMetric(per(theirs), "tshark-s")
	b.ReportMetric(wall, "wall-ratio")
	b.ReportMetric(cpu, "cpu-ratio")
	b.Logf("%d packets: closeduel %.3fs wall %.3fs CPU, tshark -2 %.3fs wall %.3fs CPU per run; ratio %.4f wall, %.4f CPU",
		n, per(ours), per(oursCPU), per(theirs), per(theirsCPU), wall, cpu)
	if cpu > 0.1 {
		b.Errorf("closeduel took %.1f%% of tshark's CPU time, want at most 10%%", 100*cpu)
	}
}
