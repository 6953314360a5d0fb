package main

import (
	"fmt"
	"github.com/closeduel/closeduel/internal/benchtest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRuleFilesThatAreNotRegularAreRefused: a symlink to /dev/zero made
// check grow without bound, a FIFO made it wait for ever.
func TestRuleFilesThatAreNotRegularAreRefused(t *testing.T) {
	dir := t.TempDir()
	zero := filepath.Join(dir, "zero.yaml")
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"check", zero}, "rules: " + zero + ": not a regular file (a character device); a rule file must be one\n"},
		{[]string{"check", fifo}, "rules: " + fifo + ": not a regular file (a FIFO); a rule file must be one (to read a pipe, ask for it: --allow-pipe)\n"},
	} {
		done := make(chan struct{})
		var errOut string
		var err error
		go func() {
			_, errOut, err = runCmd(t, "", tc.args...)
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%q did not return within 10 s", tc.args)
		}
		if exitCode(err) != 1 || errOut != tc.want {
			t.Errorf("%q: %v, stderr %q\nwant %q", tc.args, err, errOut, tc.want)
		}
	}
}

// TestRunAndLabRefuseARuleFileThatIsADevice: run --rules and lab --rules
// refuse before they build or bind anything.
func TestRunAndLabRefuseARuleFileThatIsADevice(t *testing.T) {
	zero := filepath.Join(t.TempDir(), "zero.yaml")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"run", "--rules", zero, "--hook", "none", "--control", "off"}, {"lab", "--rules", zero}} {
		done := make(chan error, 1)
		go func() {
			_, _, err := runCmd(t, "", args...)
			done <- err
		}()
		select {
		case err := <-done:
			want := "rules: " + zero + ": not a regular file (a character device); a rule file must be one"
			if err == nil || !strings.Contains(err.Error(), want) && !strings.Contains(err.Error(), "missing CAP_") {
				t.Errorf("%q: %v; want %q", args, err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%q did not return within 10 s", args)
		}
	}
}

func TestAnalyzeRefusesARunYamlThatIsADevice(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "run.yaml")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "verdicts.jsonl"), nil, 0o644)
	done := make(chan error, 1)
	go func() {
		_, _, err := runCmd(t, "", "analyze", "--run", dir)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "run.yaml: not a regular file") {
			t.Errorf("analyze --run: %v; want not a regular file", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("analyze --run did not return within 10 s")
	}
}

// TestBlockingReadsEndOnSIGINT: check and analyze reading a FIFO no one
// writes ignored SIGINT and SIGTERM.
func TestBlockingReadsEndOnSIGINT(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// A writer that opens and never writes: reads block, not the open.
	w, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, tc := range []struct {
		name string
		args []string
		sig  syscall.Signal
	}{
		{"check --allow-pipe, SIGINT", []string{"check", "--allow-pipe", fifo}, syscall.SIGINT},
		{"check -, SIGTERM", []string{"check", "-"}, syscall.SIGTERM},
		{"analyze, SIGINT", []string{"analyze", fifo}, syscall.SIGINT},
		{"analyze, SIGTERM", []string{"analyze", fifo}, syscall.SIGTERM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, tc.args...)
			if tc.args[len(tc.args)-1] == "-" {
				r, err := os.Open(fifo)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				cmd.Stdin = r
			}
			var out benchtest.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitReading(t, cmd.Process.Pid, fifo)
			cmd.Process.Signal(tc.sig)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(out.String(), "interrupted") && !strings.Contains(out.String(), "stopped") {
					t.Errorf("exit %v, output %q; want an error that says it was interrupted", err, out.String())
				}
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("still running 5 s after the signal; output %q", out.String())
			}
		})
	}
}

// waitReading waits until process pid has got as far as reading: it has
// path open, or one of its threads is in read(0, ...) (standard input).
func waitReading(t *testing.T, pid int, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); l == path && fd.Name() != "0" {
				time.Sleep(50 * time.Millisecond) // from open to read
				return
			}
		}
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		for _, task := range tasks {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", pid, task.Name()))
			if strings.HasPrefix(string(b), "0 0x0 ") { // read(0, ...)
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("pid %d did not start reading within 10 s", pid)
}
