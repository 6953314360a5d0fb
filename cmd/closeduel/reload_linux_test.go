package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/closeduel/closeduel/bridgehook"
	"github.com/closeduel/closeduel/control"
	"github.com/closeduel/closeduel/internal/benchtest"
	"github.com/closeduel/closeduel/internal/roottest"
	"github.com/closeduel/closeduel/netns"
)

// TestReloadNeverBlocksTheRun: a rule file replaced by a FIFO and reloaded
// (SIGHUP) used to block run's main loop: traffic stayed delayed and
// SIGTERM was ignored. Now, without --allow-pipe, ctl reload refuses a
// FIFO or a device at once and the old rules stay; with it, a reload that
// waits for the FIFO's writer leaves traffic and the control socket
// working, and SIGTERM still stops the run promptly with its chain removed.
// beforeRules hold a SYN to port 81 for 30 s: a packet the run holds when
// it is stopped.
const beforeRules = "experiment: before\nabout: The rules before.\nrules:\n  - { name: hold-syn-81, when: { ports: [81], has: [SYN] }, do: { delay: 30s } }\n"

func TestReloadNeverBlocksTheRun(t *testing.T) {
	roottest.Require(t)
	bin := buildBinary(t)
	ctx := context.Background()
	topo := newBench(t, "rl")
	benchtest.Serve(t, topo.Device, "192.168.100.99:80", func(c net.Conn) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	})
	request := func() error {
		c, err := benchtest.Dial(topo.Client, "192.168.100.99:80", 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 200") {
			return fmt.Errorf("answer %q: %v", b, err)
		}
		return nil
	}

	dir := t.TempDir()
	rulesPath, sock := filepath.Join(dir, "rules.yaml"), filepath.Join(dir, "ctl.sock")
	if err := os.WriteFile(rulesPath, []byte(beforeRules), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, pipe := range []bool{false, true} {
		t.Run(fmt.Sprintf("allow-pipe=%v", pipe), func(t *testing.T) {
			extra := []string{"--rules", rulesPath}
			if pipe {
				extra = append(extra, "--allow-pipe")
			}
			os.Remove(rulesPath)
			os.WriteFile(rulesPath, []byte(beforeRules), 0o644)
			run := startRun(t, bin, topo.Bridge, sock, extra...)
			out := run.out
			if !pipe {
				zero := filepath.Join(dir, "zero")
				os.Remove(zero)
				os.Symlink("/dev/zero", zero)
				os.Rename(zero, rulesPath)
				_, err := control.Send(ctx, sock, []string{"reload"})
				if err == nil || !strings.Contains(err.Error(), "the old rules stay in force: rules: "+rulesPath+": not a regular file (a character device)") {
					t.Fatalf("reload of a /dev/zero symlink: %v", err)
				}
			}
			// The rule file becomes a FIFO nobody writes.
			os.Remove(rulesPath)
			if err := syscall.Mkfifo(rulesPath, 0o600); err != nil {
				t.Fatal(err)
			}
			run.Process.Signal(syscall.SIGHUP)
			if !pipe {
				for i := 0; i < 250 && !strings.Contains(out.String(), "not a regular file (a FIFO)"); i++ {
					time.Sleep(20 * time.Millisecond)
				}
				if !strings.Contains(out.String(), "not a regular file (a FIFO)") {
					t.Errorf("SIGHUP with a FIFO is not refused:\n%s", out.String())
				}
			} else {
				// The reload waits in open(2) for the FIFO's writer.
				for i := 0; i < 250 && !inSyscall(run.Process.Pid, 257); i++ {
					time.Sleep(20 * time.Millisecond)
				}
				_, err := control.Send(ctx, sock, []string{"reload"})
				if err == nil || !strings.Contains(err.Error(), "a reload is already under way") {
					t.Errorf("a second reload while the first waits: %v", err)
				}
			}
			// The run goes on: traffic passes, the control socket answers.
			for i := range 3 {
				if err := request(); err != nil {
					t.Fatalf("request %d while the reload waits: %v", i, err)
				}
			}
			st, err := control.Send(ctx, sock, []string{"status"})
			if err != nil || !strings.Contains(st, "experiment before") {
				t.Fatalf("status while the reload waits: %q, %v", st, err)
			}
			// A SYN held when the run stops: delivered at the stop (the
			// device, with nothing on port 81, refuses it at once).
			refused := make(chan error, 1)
			go func() {
				err := netns.Do(topo.Client, func() error {
					c, err := net.DialTimeout("tcp4", "192.168.100.99:81", 10*time.Second)
					if err == nil {
						c.Close()
					}
					return err
				})
				refused <- err
			}()
			time.Sleep(300 * time.Millisecond)
			start := time.Now()
			run.Process.Signal(syscall.SIGTERM)
			select {
			case <-run.done:
			case <-time.After(5 * time.Second):
				t.Fatalf("run still going 5 s after SIGTERM:\n%s", out.String())
			}
			t.Logf("exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
			select {
			case err := <-refused:
				if err == nil || !strings.Contains(err.Error(), "connection refused") {
					t.Errorf("the held SYN: %v; want connection refused", err)
				}
				t.Logf("held SYN answered %v after SIGTERM", time.Since(start).Round(time.Millisecond))
			case <-time.After(5 * time.Second):
				t.Error("the SYN held at the stop was not delivered")
			}
			if !strings.Contains(out.String(), "still held 0") || strings.Contains(out.String(), "held           0,") {
				t.Errorf("summary does not say one packet held and none still held:\n%s", out.String())
			}
			if !strings.Contains(out.String(), "summary after") {
				t.Errorf("no summary:\n%s", out.String())
			}
			if left, err := bridgehook.Leftovers(ctx, topo.Bridge); err != nil || len(left) != 0 {
				t.Errorf("rules left after exit: %q (%v)", left, err)
			}
		})
	}
}

// inSyscall reports whether a thread of process pid is in system call nr
// (x86-64 numbers: 257 is openat).
func inSyscall(pid, nr int) bool {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", pid, task.Name()))
		if strings.HasPrefix(string(b), fmt.Sprint(nr)+" ") {
			return true
		}
	}
	return false
}
