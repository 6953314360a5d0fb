// Package benchtest is the one test bench of closeduel's real-kernel tests
// (as corerad's crtest is for corerad): a topology of the test's own
// namespaces removed at its end, a server in one namespace, a dial from
// another, and a buffer a child process writes to while the test reads it.
// Building a topology needs root (guard tests with roottest.Require); the
// engine and the hook stay with the package that owns them (nfq's bench).
package benchtest

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/closeduel/closeduel/netns"
	"github.com/closeduel/closeduel/topology"
)

// Topology builds a topology (client, bridge and device namespaces) named
// name, removed at the end of the test (after the cleanups registered
// later, such as a run or an engine in it); an error removing it fails t.
func Topology(t testing.TB, name string) *topology.Topology {
	t.Helper()
	topo, err := topology.Build(context.Background(), topology.Config{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := topo.Close(); err != nil {
			t.Errorf("topology close: %v", err)
		}
	})
	return topo
}

// Serve accepts TCP connections on addr in namespace ns until the end of
// the test; each is handled by handle in its own goroutine, then closed.
func Serve(t testing.TB, ns, addr string, handle func(net.Conn)) {
	t.Helper()
	var ln net.Listener
	if err := netns.Do(ns, func() (err error) { ln, err = net.Listen("tcp4", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); handle(c) }()
		}
	}()
}

// Dial connects from namespace ns to the TCP address addr.
func Dial(ns, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := netns.Do(ns, func() (err error) { c, err = net.DialTimeout("tcp4", addr, timeout); return err })
	return c, err
}

// Buffer collects what a child process writes while the test reads it.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
