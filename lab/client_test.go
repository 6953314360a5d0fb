package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// serveLoopback answers every connection like the devices do (head only,
// then close) on a loopback port and returns its address.
func serveLoopback(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 1024)
				n := 0
				for !bytes.Contains(buf[:n], []byte("\r\n\r\n")) {
					m, err := c.Read(buf[n:])
					n += m
					if err != nil {
						return
					}
				}
				c.Write(Response(DefaultSize))
			}()
		}
	}()
	return ln.Addr().String()
}

func TestRunClientKeepsScheduleOnLoopback(t *testing.T) {
	addr := serveLoopback(t)
	sched, err := ParseSchedule("2x100ms,3x50ms")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := RunClient(ctx, ClientConfig{Target: addr, Schedule: sched, WaitEOF: true, Timeout: 2 * time.Second}, &out); err != nil {
		t.Fatal(err)
	}
	var kinds []ClientEventKind
	var starts []int64
	ok := 0
	dec := json.NewDecoder(&out)
	for dec.More() {
		var ev ClientEvent
		if err := dec.Decode(&ev); err != nil {
			t.Fatal(err)
		}
		switch ev.Kind {
		case ClientStart:
			starts = append(starts, ev.Start)
			continue
		case ClientResult:
			if !ev.OK || ev.Status != "HTTP/1.1 200 OK" {
				t.Errorf("request %d: ok %v status %q err %q", ev.I, ev.OK, ev.Status, ev.Err)
			}
			ok++
			continue
		}
		kinds = append(kinds, ev.Kind)
	}
	if diff := cmp.Diff([]ClientEventKind{ClientStopped, ClientDone}, kinds); diff != "" {
		t.Errorf("closing events (-want +got):\n%s", diff)
	}
	if ok != sched.Requests() || len(starts) != sched.Requests() {
		t.Fatalf("%d results and %d starts, want %d of each", ok, len(starts), sched.Requests())
	}
	// Starts are due at fixed offsets from the first, so a late wake-up
	// does not push the rest. The bound is loose: this test runs without
	// the real-time priority the lab gives its client (the integration
	// test holds the lab to ±10 ms per gap).
	for i, off := range sched.Offsets() {
		got := time.Duration(starts[i] - starts[0])
		if d := got - off; d > 50*time.Millisecond || d < -time.Millisecond {
			t.Errorf("request %d started at +%v, want +%v (+50ms at most)", i, got, off)
		}
	}
}

func TestRunClientReportsRefusedConnections(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	var out bytes.Buffer
	sched, _ := ParseSchedule("10ms")
	if err := RunClient(context.Background(), ClientConfig{Target: addr, Schedule: sched, Timeout: time.Second}, &out); err != nil {
		t.Fatal(err)
	}
	failed := 0
	dec := json.NewDecoder(&out)
	for dec.More() {
		var ev ClientEvent
		if err := dec.Decode(&ev); err != nil {
			t.Fatal(err)
		}
		if ev.Kind == ClientResult {
			if ev.OK || ev.Err == "" {
				t.Errorf("request %d to a closed port: ok %v, err %q", ev.I, ev.OK, ev.Err)
			}
			failed++
		}
	}
	if failed != 2 {
		t.Errorf("%d failed results, want 2", failed)
	}
}

func TestResponseMatchesDeviceProgram(t *testing.T) {
	got := string(Response(12))
	want := "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\ncloseduelcl\n"
	if got != want {
		t.Errorf("Response(12) = %q, want %q", got, want)
	}
	if !bytes.Contains(DeviceSource(), []byte(`"closeduel"[i % 9]`)) {
		t.Error("device.c no longer fills the body as Response does; keep them in step")
	}
}

func TestParsePortRange(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "40000-40001", want: "40000 40001"},
		{in: "50000", want: "50000 50000"},
		{in: "40001-40000", wantErr: true},
		{in: "80-90", wantErr: true},
		{in: "a-b", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parsePortRange(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parsePortRange(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// TestRunClientRandomPorts: with RandomPorts each connection comes from a
// port of the namespace's range, chosen at random rather than by the
// kernel's search.
func TestRunClientRandomPorts(t *testing.T) {
	addr := serveLoopback(t)
	lo, hi, err := localPortRange()
	if err != nil {
		t.Fatal(err)
	}
	sched, _ := ParseSchedule("7x10ms")
	var out bytes.Buffer
	if err := RunClient(context.Background(), ClientConfig{Target: addr, Schedule: sched, WaitEOF: true, Timeout: 2 * time.Second, RandomPorts: true}, &out); err != nil {
		t.Fatal(err)
	}
	var ports []int
	dec := json.NewDecoder(&out)
	for dec.More() {
		var ev ClientEvent
		if err := dec.Decode(&ev); err != nil {
			t.Fatal(err)
		}
		if ev.Kind != ClientResult {
			continue
		}
		if !ev.OK {
			t.Errorf("request %d: %s", ev.I, ev.Err)
			continue
		}
		_, p, _ := net.SplitHostPort(ev.Local)
		n, _ := strconv.Atoi(p)
		if n < lo || n > hi {
			t.Errorf("local port %d outside the range %d-%d", n, lo, hi)
		}
		ports = append(ports, n)
	}
	if len(ports) != 8 {
		t.Fatalf("%d results, want 8", len(ports))
	}
	// The kernel's search hands out ports close together and rising; eight
	// random ones from a range of thousands are not all within 64 of each
	// other (chance below 1e-20).
	near := true
	for _, p := range ports {
		if p-ports[0] > 64 || ports[0]-p > 64 {
			near = false
		}
	}
	if near {
		t.Errorf("ports %v look sequential, not random", ports)
	}
}
