package topology

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/closeduel/closeduel/internal/roottest"
	"github.com/closeduel/closeduel/netns"
)

func TestBuildConnectsClientToDeviceAndCloseRemovesAll(t *testing.T) {
	roottest.Require(t)
	ctx := context.Background()
	name := fmt.Sprintf("tp%d", os.Getpid()%100000)
	topo, err := Build(ctx, Config{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { topo.Close() })

	var ln net.Listener
	if err := netns.Do(topo.Device, func() (err error) {
		ln, err = net.Listen("tcp", "192.168.100.99:8080")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("hello"))
			c.Close()
		}
	}()
	var conn net.Conn
	if err := netns.Do(topo.Client, func() (err error) {
		conn, err = net.DialTimeout("tcp", "192.168.100.99:8080", 3*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(conn)
	conn.Close()
	if err != nil || string(got) != "hello" {
		t.Fatalf("read %q, %v; want \"hello\"", got, err)
	}
	ln.Close()
	if err := topo.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{topo.Client, topo.Bridge, topo.Device} {
		if netns.Exists(ns) {
			t.Errorf("namespace %s still exists after Close", ns)
		}
	}
}
