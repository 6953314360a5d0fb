package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ClientConfig is the workload: one new TCP connection per HTTP HEAD,
// started on Schedule. The client namespace's sysctls (port range,
// tcp_tw_reuse, ...) are set by the lab, not here.
type ClientConfig struct {
	// Target is the device's address and port, "192.168.100.99:80".
	Target string `json:"target"`
	// Schedule lists the gaps between request starts.
	Schedule Schedule `json:"schedule"`
	// Concurrency bounds the requests in flight (default 1, as a shell
	// loop of curl -I). A request whose start finds the bound reached
	// waits for a slot and is reported late.
	Concurrency int `json:"concurrency"`
	// Linger0 sets SO_LINGER 0, so the client's close sends RST.
	Linger0 bool `json:"linger0"`
	// RandomPorts binds each connection to a random port of the
	// namespace's ip_local_port_range instead of leaving the choice to the
	// kernel's sequential search (an endpoint fix against 4-tuple reuse).
	RandomPorts bool `json:"random_ports,omitempty"`
	// Timeout bounds one request from connect to response; 0 leaves the
	// connect to the kernel's SYN retries.
	Timeout time.Duration `json:"timeout"`
	// WaitEOF reads until the server has closed before closing, so the
	// client is always the passive closer; by default it closes as soon
	// as the response head is in, racing the server's FIN as curl -I does.
	WaitEOF bool `json:"wait_eof,omitempty"`
}

// ClientEventKind says what a ClientEvent reports.
type ClientEventKind string

// Client event kinds.
const (
	ClientStart   ClientEventKind = "start"   // a request started
	ClientResult  ClientEventKind = "result"  // a request finished
	ClientStopped ClientEventKind = "stopped" // the last request started: the schedule is over
	ClientDone    ClientEventKind = "done"    // every request finished
)

// ClientEvent is one line of the client's JSON Lines output. Times are
// Unix nanoseconds.
type ClientEvent struct {
	Kind ClientEventKind `json:"kind"`
	// I is the request's index in the schedule.
	I int `json:"i"`
	// Scheduled and Start are when the request was due and when it
	// started; Late says it waited for a concurrency slot.
	Scheduled int64 `json:"scheduled,omitempty"`
	Start     int64 `json:"start,omitempty"`
	Late      bool  `json:"late,omitempty"`
	// End is when the request finished (or, for stopped and done, the
	// event's time).
	End int64 `json:"end,omitempty"`
	// Local is the client's address and port (empty when connect failed).
	Local string `json:"local,omitempty"`
	// OK says a 200 response came back; Status is its status line.
	OK     bool   `json:"ok,omitempty"`
	Status string `json:"status,omitempty"`
	// Err says why the request failed.
	Err string `json:"err,omitempty"`
}

// RunClient runs the workload against cfg.Target and writes one
// ClientEvent per line to out. It returns when every request has finished
// or ctx is done.
func RunClient(ctx context.Context, cfg ClientConfig, out io.Writer) error {
	if cfg.Target == "" {
		return errors.New("lab: client: no target")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	var mu sync.Mutex
	enc := json.NewEncoder(out)
	emit := func(ev ClientEvent) {
		mu.Lock()
		defer mu.Unlock()
		enc.Encode(ev) //nolint:errcheck // a closed pipe ends the run anyway
	}
	slots := make(chan struct{}, cfg.Concurrency)
	var wg sync.WaitGroup
	origin := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for i, off := range cfg.Schedule.Offsets() {
		due := origin.Add(off)
		timer.Reset(time.Until(due))
		select {
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		case <-timer.C:
		}
		late := false
		select {
		case slots <- struct{}{}:
		default:
			late = true
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				wg.Wait()
				return ctx.Err()
			}
		}
		start := time.Now()
		emit(ClientEvent{Kind: ClientStart, I: i, Scheduled: due.UnixNano(), Start: start.UnixNano(), Late: late})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			ev := request(ctx, cfg)
			ev.Kind, ev.I, ev.Scheduled, ev.Start, ev.Late = ClientResult, i, due.UnixNano(), start.UnixNano(), late
			ev.End = time.Now().UnixNano()
			emit(ev)
		}()
	}
	emit(ClientEvent{Kind: ClientStopped, I: cfg.Schedule.Requests(), End: time.Now().UnixNano()})
	wg.Wait()
	emit(ClientEvent{Kind: ClientDone, I: cfg.Schedule.Requests(), End: time.Now().UnixNano()})
	return ctx.Err()
}

// request makes one HEAD request on a new connection, reads the response
// head and closes.
func request(ctx context.Context, cfg ClientConfig) ClientEvent {
	var ev ClientEvent
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}
	conn, err := dial(ctx, cfg)
	if err != nil {
		ev.Err = fmt.Sprintf("connect: %v", err)
		return ev
	}
	tc := conn.(*net.TCPConn)
	ev.Local = tc.LocalAddr().String()
	defer func() {
		if cfg.Linger0 {
			tc.SetLinger(0) //nolint:errcheck // best effort; the close still happens
		}
		tc.Close()
	}()
	if dl, ok := ctx.Deadline(); ok {
		tc.SetDeadline(dl) //nolint:errcheck
	}
	stop := context.AfterFunc(ctx, func() { tc.SetDeadline(time.Unix(1, 0)) }) //nolint:errcheck
	defer stop()
	host, _, _ := strings.Cut(cfg.Target, ":")
	req := "HEAD / HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: closeduel-lab\r\nAccept: */*\r\n\r\n"
	if _, err := io.WriteString(tc, req); err != nil {
		ev.Err = fmt.Sprintf("send: %v", err)
		return ev
	}
	// Read as curl does, in large chunks, until the head is complete;
	// whatever body came with it is consumed by the same reads.
	buf := make([]byte, 16384)
	n := 0
	for !bytes.Contains(buf[:n], []byte("\r\n\r\n")) {
		if n == len(buf) {
			ev.Err = "response head longer than 16 KiB"
			return ev
		}
		m, err := tc.Read(buf[n:])
		n += m
		if err != nil {
			if n > 0 && bytes.Contains(buf[:n], []byte("\r\n\r\n")) {
				break
			}
			ev.Err = fmt.Sprintf("receive: %v", err)
			return ev
		}
	}
	ev.Status, _, _ = strings.Cut(string(buf[:n]), "\r\n")
	ev.OK = strings.HasPrefix(ev.Status, "HTTP/1.") && strings.Contains(ev.Status, " 200 ")
	if !ev.OK {
		ev.Err = "unexpected status: " + ev.Status
	}
	if cfg.WaitEOF {
		for {
			m, err := tc.Read(buf)
			if m == 0 && err == io.EOF {
				break
			}
			if err != nil {
				ev.OK, ev.Err = false, fmt.Sprintf("wait for the server's close: %v", err)
				return ev
			}
		}
	}
	return ev
}

// dial connects to cfg.Target, from a random local port of the port range
// when cfg.RandomPorts is set (another one when that one is taken).
func dial(ctx context.Context, cfg ClientConfig) (net.Conn, error) {
	var d net.Dialer
	if !cfg.RandomPorts {
		return d.DialContext(ctx, "tcp4", cfg.Target)
	}
	lo, hi, err := localPortRange()
	if err != nil {
		return nil, err
	}
	for try := 0; ; try++ {
		d.LocalAddr = &net.TCPAddr{Port: lo + rand.IntN(hi-lo+1)}
		conn, err := d.DialContext(ctx, "tcp4", cfg.Target)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || try == 20 {
			return conn, err
		}
	}
}

// localPortRange reads the namespace's net.ipv4.ip_local_port_range.
func localPortRange() (lo, hi int, err error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, fmt.Errorf("lab: client: port range: %w", err)
	}
	if _, err := fmt.Sscan(string(b), &lo, &hi); err != nil || lo < 1 || hi < lo {
		return 0, 0, fmt.Errorf("lab: client: port range %q", strings.TrimSpace(string(b)))
	}
	return lo, hi, nil
}
