package runstate

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestAliveTellsAZombieFromALiveProcess: a child that exited and is not
// reaped yet is still found by kill(pid, 0), and is not alive.
func TestAliveTellsAZombieFromALiveProcess(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep:", err)
	}
	pid := cmd.Process.Pid
	defer cmd.Wait()
	if !Alive(pid) {
		t.Fatalf("running child %d not alive", pid)
	}
	if !Alive(os.Getpid()) {
		t.Fatal("this process not alive")
	}
	cmd.Process.Kill()
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(pid, 0); err != nil {
		t.Fatalf("kill(%d, 0) of the unreaped child: %v (want it found)", pid, err)
	}
	if Alive(pid) {
		t.Errorf("zombie %d said alive", pid)
	}
	cmd.Wait()
	deadline := time.Now().Add(time.Second)
	for Alive(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if Alive(pid) {
		t.Errorf("reaped %d said alive", pid)
	}
}
