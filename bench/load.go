package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Workload names one kind of load.
type Workload string

// The workloads.
const (
	// RequestResponse: one connection, one-byte request and one-byte
	// answer back to back (netperf's TCP_RR); the figure is transactions/s.
	RequestResponse Workload = "rr"
	// Churn: a new connection per one-byte request, the server answers and
	// closes first (the HEAD workload at full speed); connections/s.
	Churn Workload = "churn"
	// Bulk: one connection streaming 64 KiB writes; Mbit/s.
	Bulk Workload = "bulk"
)

// Unit returns the unit of the workload's figure.
func (w Workload) Unit() string {
	switch w {
	case RequestResponse:
		return "trans/s"
	case Churn:
		return "conn/s"
	case Bulk:
		return "Mbit/s"
	}
	return "?"
}

// servers holds the device-side listeners of every workload.
type servers struct {
	lns []net.Listener
	wg  sync.WaitGroup
}

const (
	portRR    = 5001
	portChurn = 5002
	portBulk  = 5003
)

// Serve answers every workload on addr (in the current namespace) until
// ctx is done.
func Serve(ctx context.Context, addr string) error {
	s := &servers{}
	for _, p := range []int{portRR, portChurn, portBulk} {
		ln, err := net.Listen("tcp4", fmt.Sprintf("%s:%d", addr, p))
		if err != nil {
			s.close()
			return fmt.Errorf("bench: listen on %d: %w", p, err)
		}
		s.lns = append(s.lns, ln)
		s.wg.Add(1)
		go s.serve(ln, p)
	}
	<-ctx.Done()
	s.close()
	return nil
}

func (s *servers) serve(ln net.Listener, port int) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func(c net.Conn) {
			defer c.Close()
			buf := make([]byte, 64<<10)
			switch port {
			case portRR:
				for {
					if _, err := io.ReadFull(c, buf[:1]); err != nil {
						return
					}
					if _, err := c.Write(buf[:1]); err != nil {
						return
					}
				}
			case portChurn:
				if _, err := io.ReadFull(c, buf[:1]); err == nil {
					c.Write(buf[:1])
				}
			case portBulk:
				io.CopyBuffer(io.Discard, c, buf)
			}
		}(c)
	}
}

func (s *servers) close() {
	for _, ln := range s.lns {
		ln.Close()
	}
	s.wg.Wait()
}

func dial(addr string, port int) (net.Conn, error) {
	return net.DialTimeout("tcp4", fmt.Sprintf("%s:%d", addr, port), 2*time.Second)
}

// Figure is what one workload measured: its value in the workload's unit
// and, for request/response, the round trip's percentiles.
type Figure struct {
	Value    float64
	P50, P99 time.Duration
}

// Load drives one workload against addr (from the current namespace) for
// d and returns its figure.
func Load(ctx context.Context, w Workload, addr string, d time.Duration) (Figure, error) {
	if w == RequestResponse {
		return loadRR(ctx, addr, d)
	}
	v, err := load(ctx, w, addr, d)
	return Figure{Value: v}, err
}

// loadRR runs request/response and times every round trip.
func loadRR(ctx context.Context, addr string, d time.Duration) (Figure, error) {
	deadline := time.Now().Add(d)
	c, err := dial(addr, portRR)
	if err != nil {
		return Figure{}, err
	}
	defer c.Close()
	c.SetDeadline(deadline.Add(2 * time.Second))
	b := []byte{'x'}
	rtts := make([]time.Duration, 0, 1<<18)
	start := time.Now()
	last := start
	for last.Before(deadline) && ctx.Err() == nil {
		if _, err := c.Write(b); err != nil {
			return Figure{}, err
		}
		if _, err := io.ReadFull(c, b); err != nil {
			return Figure{}, err
		}
		now := time.Now()
		rtts = append(rtts, now.Sub(last))
		last = now
	}
	if len(rtts) == 0 {
		return Figure{}, errors.New("bench: no round trip completed")
	}
	slices.Sort(rtts)
	return Figure{
		Value: float64(len(rtts)) / last.Sub(start).Seconds(),
		P50:   rtts[len(rtts)/2],
		P99:   rtts[len(rtts)*99/100],
	}, nil
}

// Pace sends one-byte segments (TCP_NODELAY) to the bulk port at rate
// packets per second for d and returns how many writes it made. It sends
// in bursts once a millisecond (rate/1000 writes each, at least one), so
// it sleeps between them rather than spinning a CPU the engine needs.
func Pace(ctx context.Context, addr string, rate int, d time.Duration) (int, error) {
	c, err := dial(addr, portBulk)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	c.SetDeadline(time.Now().Add(d + 2*time.Second))
	b := []byte{'x'}
	start := time.Now()
	n := 0
	for ctx.Err() == nil {
		el := time.Since(start)
		if el >= d {
			break
		}
		due := int(el.Seconds()*float64(rate)) + 1
		for ; n < due; n++ {
			if _, err := c.Write(b); err != nil {
				return n, err
			}
		}
		time.Sleep(time.Millisecond)
	}
	return n, nil
}

// load drives the other workloads.
func load(ctx context.Context, w Workload, addr string, d time.Duration) (float64, error) {
	deadline := time.Now().Add(d)
	switch w {
	case Churn:
		n := 0
		start := time.Now()
		b := []byte{'x'}
		for time.Now().Before(deadline) && ctx.Err() == nil {
			c, err := dial(addr, portChurn)
			if err != nil {
				return 0, err
			}
			c.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := c.Write(b); err != nil {
				c.Close()
				return 0, err
			}
			if _, err := io.ReadFull(c, b); err != nil {
				c.Close()
				return 0, err
			}
			// Wait for the server's FIN before closing, so the client
			// closes second and keeps no TIME_WAIT: its port range would
			// otherwise fill within seconds and connect would crawl.
			if _, err := io.Copy(io.Discard, c); err != nil {
				c.Close()
				return 0, err
			}
			c.Close()
			n++
		}
		return float64(n) / time.Since(start).Seconds(), nil
	case Bulk:
		c, err := dial(addr, portBulk)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		c.SetDeadline(deadline.Add(2 * time.Second))
		buf := make([]byte, 64<<10)
		var sent atomic.Int64
		start := time.Now()
		for time.Now().Before(deadline) && ctx.Err() == nil {
			n, err := c.Write(buf)
			sent.Add(int64(n))
			if err != nil {
				return 0, err
			}
		}
		return float64(sent.Load()*8) / time.Since(start).Seconds() / 1e6, nil
	}
	return 0, errors.New("bench: unknown workload " + string(w))
}
