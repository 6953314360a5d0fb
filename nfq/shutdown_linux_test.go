package nfq

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/closeduel/closeduel/bridgehook"
	"github.com/closeduel/closeduel/segment"
)

// holdSYNs holds every SYN for far longer than the test runs.
type holdSYNs struct{}

func (holdSYNs) Decide(p *Packet, dc *Decision) {
	if p.Seg.Flags == segment.SYN {
		dc.Delay, dc.Rule, dc.Action = time.Hour, "hold-syn", "delay"
	}
}

func TestShutdownReleasesEveryHeldPacket(t *testing.T) {
	b := newBench(t, holdSYNs{})
	ln := b.listen(t, 80)
	go serveHTTPClose(ln)
	type result struct {
		resp string
		err  error
		at   time.Time
	}
	done := make(chan result, 1)
	go func() {
		r, err := b.headRequest(80)
		done <- result{r, err, time.Now()}
	}()
	time.Sleep(300 * time.Millisecond)
	if st := b.engine.Stats(); st.Held != 1 || st.HeldNow != 1 {
		t.Fatalf("before stop: held %d, held now %d; want the SYN held", st.Held, st.HeldNow)
	}
	stopped := time.Now()
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	st := b.engine.Stats()
	if st.Released != 1 || st.Accepted != st.Packets {
		t.Fatalf("after stop: released %d of %d held, accepted %d of %d packets", st.Released, st.Held, st.Accepted, st.Packets)
	}
	select {
	case r := <-done:
		if r.err != nil || !strings.HasPrefix(r.resp, "HTTP/1.1 200") {
			t.Fatalf("request after release: %q, %v", r.resp, r.err)
		}
		// Released at shutdown, not by the client's SYN retransmission (1 s).
		if d := r.at.Sub(stopped); d > 700*time.Millisecond {
			t.Fatalf("request completed %v after stop, want the released SYN to carry it at once", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("request did not complete after the held SYN was released")
	}
	var held int
	for _, ev := range b.rec.snapshot() {
		if ev.Rule == "hold-syn" {
			held++
			if ev.Verdict != Accept || ev.Held < 300*time.Millisecond {
				t.Errorf("held SYN logged as %v after %v", ev.Verdict, ev.Held)
			}
		}
	}
	if held != 1 {
		t.Fatalf("logged %d held SYNs, want 1", held)
	}
}

func TestQueueBypassWithoutEngine(t *testing.T) {
	// The bench's rule is in, but no engine is bound (it was closed):
	// --queue-bypass lets traffic through instead of black-holing it.
	b := newBench(t, nil)
	ln := b.listen(t, 80)
	go serveHTTPClose(ln)
	b.cancel()
	<-b.done
	b.engine.Close()
	b.cancel = nil
	hook, err := bridgehook.Install(context.Background(), b.hookC)
	if err != nil {
		t.Fatal(err)
	}
	defer hook.Remove()
	start := time.Now()
	resp, err := b.headRequest(80)
	if err != nil || !strings.HasPrefix(resp, "HTTP/1.1 200") {
		t.Fatalf("with the rule in and no engine: %q, %v", resp, err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("request took %v: packets were held, not bypassed", d)
	}
}
