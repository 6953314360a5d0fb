package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/closeduel/closeduel/internal/benchtest"
	"github.com/closeduel/closeduel/netns"
	"github.com/closeduel/closeduel/topology"
)

// The real-kernel tests of cmd/closeduel add to internal/benchtest's bench
// the built binary and a closeduel process started and waited for until it
// is inline.

// built is the closeduel binary the tests share: built once per test
// binary run (a link takes seconds), removed by TestMain.
var built struct {
	once      sync.Once
	dir, path string
	err       error
}

// buildBinary builds closeduel once per test binary run and returns its
// path.
func buildBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "closeduel-test-"); built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "closeduel")
		if out, err := exec.Command("go", "build", "-o", built.path, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

// removeBuiltBinary removes what buildBinary built.
func removeBuiltBinary() {
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
}

// newBench builds a bench (client, bridge and device namespaces) named
// prefix and this process's pid, removed at the end of the test.
func newBench(t *testing.T, prefix string) *topology.Topology {
	t.Helper()
	return benchtest.Topology(t, fmt.Sprintf("%s%d", prefix, os.Getpid()%100000))
}

// liveRun is a closeduel process started by startRun or startCloseduel:
// the command, its combined output so far, and done, closed once it has
// exited (exitErr then holds what Wait returned).
type liveRun struct {
	*exec.Cmd
	out     *benchtest.Buffer
	done    chan struct{}
	exitErr error
}

// startRun starts closeduel run on br0 in the bench's bridge namespace ns
// with its control socket at sock and waits until it is inline; the run is
// stopped at the end of the test.
func startRun(t *testing.T, bin, ns, sock string, extra ...string) *liveRun {
	t.Helper()
	// run prints that line only once the whole chain and the jump to it
	// are in (a chain alone is not enough: traffic passes it by until the
	// jump is inserted).
	return startCloseduel(t, ns, "inline (iptables chain", append([]string{bin, "run", "--bridge", "br0", "--control", sock}, extra...)...)
}

// stop sends the run SIGTERM and waits up to 10 s for it to exit, failing
// t (with its output) if it does not; exitErr then holds how it ended.
func (r *liveRun) stop(t *testing.T) {
	t.Helper()
	r.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: still going 10 s after SIGTERM:\n%s", strings.Join(r.Args[1:], " "), r.out.String())
	}
}

// startCloseduel starts argv in namespace ns and waits up to 10 s until
// its output says ready. At the end of the test it is sent SIGTERM, and
// killed if still going 10 s later.
func startCloseduel(t *testing.T, ns, ready string, argv ...string) *liveRun {
	t.Helper()
	r := &liveRun{Cmd: netns.Command(context.Background(), ns, argv...), out: &benchtest.Buffer{}, done: make(chan struct{})}
	r.Stdout, r.Stderr = r.out, r.out
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.exitErr = r.Wait(); close(r.done) }()
	t.Cleanup(func() {
		r.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			r.Process.Kill()
			<-r.done
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(r.out.String(), ready) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q within 10 s:\n%s", strings.Join(argv[1:], " "), ready, r.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return r
}
