package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/closeduel/closeduel/netns"
)

// proc is a helper process of the bench (device or client) whose standard
// output is JSON Lines: each line goes to a log file and to onLine.
type proc struct {
	name   string
	cmd    *exec.Cmd
	done   chan struct{}
	err    error
	stderr strings.Builder
	mu     sync.Mutex
}

// placement says where a helper process runs: on which CPU, and whether
// at the bench's real-time priority (SCHED_FIFO), so that a busy machine
// cannot hold it off for long.
type placement struct {
	cpu  string
	fifo bool
}

var (
	// The lwIP device shares the packet path's CPU: it is event-driven C
	// that never spins, so at a real-time priority it cannot starve the
	// softirq work there.
	devicePlacement = placement{cpu: pinnedCPU, fifo: true}
	// Go programs (the client, the Linux device) run next to it: the Go
	// runtime spins a little when idle, which at a real-time priority on
	// the packet path's CPU would hold off the softirq work for long.
	goPlacement = placement{cpu: clientCPU(), fifo: true}
)

// startProc runs argv in namespace ns where pl says. It is stopped with
// SIGTERM when ctx is done (SIGKILL 3 s later) and killed if this process
// dies.
func startProc(ctx context.Context, name, ns string, pl placement, env []string, argv []string, log io.Writer, onLine func([]byte)) (*proc, error) {
	full := append([]string{"taskset", "-c", pl.cpu}, argv...)
	if pl.fifo {
		full = append([]string{"chrt", "--fifo", realtimePriority}, full...)
	}
	cmd := netns.Command(ctx, ns, full...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 3 * time.Second
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("lab: %s: %w", name, err)
	}
	cmd.Stderr = &lockedWriter{mu: &p.mu, w: &p.stderr}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("lab: start %s (%s): %w", name, strings.Join(full, " "), err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			line := sc.Bytes()
			if log != nil {
				log.Write(line)         //nolint:errcheck // the log is best effort; the run goes on
				log.Write([]byte{'\n'}) //nolint:errcheck
			}
			if onLine != nil {
				onLine(line)
			}
		}
		io.Copy(io.Discard, stdout) //nolint:errcheck
		p.err = cmd.Wait()
		if log != nil {
			if s := strings.TrimSpace(p.stderrText()); s != "" {
				b, _ := json.Marshal(map[string]string{"event": "stderr", "text": s})
				log.Write(append(b, '\n')) //nolint:errcheck
			}
		}
		close(p.done)
	}()
	return p, nil
}

func (p *proc) stderrText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// signal sends sig to the process.
func (p *proc) signal(sig os.Signal) {
	if p.cmd.Process != nil {
		p.cmd.Process.Signal(sig) //nolint:errcheck // it may have exited
	}
}

// stop sends SIGTERM and waits up to wait for the process to exit (then
// kills it).
func (p *proc) stop(wait time.Duration) error {
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(wait):
		p.signal(syscall.SIGKILL)
		<-p.done
	}
	return p.exitErr()
}

// exitErr returns why the process failed, with its standard error; a
// process ended by our SIGTERM is not an error.
func (p *proc) exitErr() error {
	if p.err == nil || errors.Is(p.err, context.Canceled) || errors.Is(p.err, context.DeadlineExceeded) {
		return nil // stopped because the run was: Run reports that
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil
		}
	}
	return fmt.Errorf("lab: %s: %w: %s", p.name, p.err, strings.TrimSpace(p.stderrText()))
}

// clientCPU returns the CPU for the real-time client: the one after the
// packet path's, or the packet path's own on a single-CPU machine.
func clientCPU() string {
	if runtime.NumCPU() > 1 {
		return "1"
	}
	return pinnedCPU
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
