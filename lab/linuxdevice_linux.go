package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ServeLinux runs the Linux control device until ctx is done, writing
// DeviceEvents (accept, fin, close, err, and a final status) to out. It
// listens where it runs: start it inside the device namespace.
func ServeLinux(ctx context.Context, cfg LinuxDeviceConfig, out io.Writer) error {
	lc := net.ListenConfig{}
	ln, err := lc.Listen(ctx, "tcp4", cfg.Listen)
	if err != nil {
		return fmt.Errorf("lab: linux device: %w", err)
	}
	var (
		mu  sync.Mutex
		enc = json.NewEncoder(out)
		st  DeviceEvent
	)
	emit := func(ev DeviceEvent) {
		mu.Lock()
		defer mu.Unlock()
		ev.Time = float64(time.Now().UnixNano()) / 1e9
		enc.Encode(ev) //nolint:errcheck
	}
	count := func(f func(*DeviceEvent)) {
		mu.Lock()
		f(&st)
		mu.Unlock()
	}
	emit(DeviceEvent{Event: "ready"})
	resp := Response(cfg.Size)
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	for {
		conn, err := ln.Accept()
		if err != nil {
			break
		}
		tc := conn.(*net.TCPConn)
		remote := tc.RemoteAddr().String()
		count(func(s *DeviceEvent) { s.Accepted++ })
		emit(DeviceEvent{Event: "accept", Remote: remote})
		wg.Add(1)
		go func() {
			defer wg.Done()
			how, err := serveOne(tc, cfg.Close, resp, func() { count(func(s *DeviceEvent) { s.Requests++ }) })
			if err != nil {
				count(func(s *DeviceEvent) { s.Errors++ })
				emit(DeviceEvent{Event: "err", Remote: remote, Err: err.Error()})
				return
			}
			count(func(s *DeviceEvent) {
				s.Responses++
				if how == "abort" {
					s.Aborted++
				} else {
					s.Closed++
				}
			})
			emit(DeviceEvent{Event: "close", Remote: remote, How: how})
		}()
	}
	wg.Wait()
	mu.Lock()
	final := st
	mu.Unlock()
	final.Event, final.Final = "status", true
	emit(final)
	return nil
}

// serveOne answers one connection and ends it as mode says; it returns
// "close" or "abort".
func serveOne(tc *net.TCPConn, mode CloseMode, resp []byte, onRequest func()) (string, error) {
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(30 * time.Second)) //nolint:errcheck
	buf := make([]byte, 4096)
	n := 0
	for !bytes.Contains(buf[:n], []byte("\r\n\r\n")) && n < len(buf) {
		m, err := tc.Read(buf[n:])
		n += m
		if err != nil {
			return "", fmt.Errorf("read request: %w", err)
		}
	}
	if !bytes.HasPrefix(buf[:n], []byte("HEAD ")) && !bytes.HasPrefix(buf[:n], []byte("GET ")) {
		return "", errors.New("not a HEAD or GET request")
	}
	onRequest()
	if _, err := tc.Write(resp); err != nil {
		return "", fmt.Errorf("write response: %w", err)
	}
	switch mode {
	case CloseWaitClient:
		if _, err := io.Copy(io.Discard, tc); err != nil {
			return "", fmt.Errorf("wait for the client's close: %w", err)
		}
		return "close", nil
	case CloseAbort:
		waitAcked(tc)
		tc.SetLinger(0) //nolint:errcheck
		return "abort", nil
	default:
		// As lwIP's sent callback: close once the response is acked.
		waitAcked(tc)
		return "close", nil
	}
}

// waitAcked polls TCP_INFO until nothing sent is unacknowledged (at most
// one second).
func waitAcked(tc *net.TCPConn) {
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		unacked := uint32(1)
		raw.Control(func(fd uintptr) { //nolint:errcheck
			if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
				unacked = info.Unacked
			}
		})
		if unacked == 0 {
			return
		}
		time.Sleep(200 * time.Microsecond)
	}
}
