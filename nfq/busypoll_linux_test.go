package nfq

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestBusyPoll exchanges 300 one-byte requests and responses on one
// connection through the queue, with BusyPoll at its longest (1 ms) and
// off. Every packet gets its verdict either way; with it, some batches are
// taken by polling, without it none; and once the traffic stops an idle
// queue is not polled (no poll misses while it stays quiet).
func TestBusyPoll(t *testing.T) {
	for _, poll := range []time.Duration{time.Millisecond, 0} {
		b := newBenchWith(t, Config{BusyPoll: poll})
		ln := b.listen(t, 7001)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			io.Copy(c, c)
		}()
		c, err := b.dial(7001)
		if err != nil {
			t.Fatal(err)
		}
		c.(*net.TCPConn).SetNoDelay(true)
		c.SetDeadline(time.Now().Add(30 * time.Second))
		const n = 300
		buf := []byte{0}
		for i := range n {
			if _, err := c.Write(buf); err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
		}
		time.Sleep(200 * time.Millisecond) // the last (delayed) ACKs
		quiet := b.engine.Stats()
		time.Sleep(300 * time.Millisecond)
		st := b.engine.Stats()
		c.Close()
		t.Logf("busy-poll %v: %d packets, %d batches, %d taken by polling, %d polls found none", poll, st.Packets, st.Batches, st.SpinHits, st.SpinMisses)
		if st.Packets < 2*n || st.Accepted != st.Packets {
			t.Errorf("busy-poll %v: %d packets, %d accepted, want at least %d, all accepted", poll, st.Packets, st.Accepted, 2*n)
		}
		if poll == 0 && (st.SpinHits != 0 || st.SpinMisses != 0) {
			t.Errorf("busy-poll off: %d batches taken by polling, %d polls, want none", st.SpinHits, st.SpinMisses)
		}
		if poll > 0 && st.SpinHits == 0 {
			t.Errorf("busy-poll %v: no batch taken by polling in %d request/response exchanges", poll, n)
		}
		if st.SpinMisses != quiet.SpinMisses || st.SpinHits != quiet.SpinHits {
			t.Errorf("busy-poll %v: the idle queue was polled (misses %d -> %d, hits %d -> %d in 300 ms without packets)",
				poll, quiet.SpinMisses, st.SpinMisses, quiet.SpinHits, st.SpinHits)
		}
		if err := b.stop(); err != nil {
			t.Fatal(err)
		}
	}
}
