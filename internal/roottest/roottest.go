// Package roottest guards tests that need root and the real kernel: they
// skip with a message that says why when not root, and fail instead of
// skipping under CI (CI=true), where every test must run.
package roottest

import (
	"os"
	"os/exec"
	"testing"
)

// Require skips t (or fails it under CI) unless the process is root.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root (network namespaces, NFQUEUE, iptables) and CI runs as root: run it as root")
	}
	t.Skip("skipped: needs root for network namespaces, NFQUEUE and iptables (run `sudo go test ./...` or `make test`)")
}

// RequireTools skips t (or fails it under CI, whose `make deps-test`
// installs them) unless every named program is on $PATH.
func RequireTools(t testing.TB, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err == nil {
			continue
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is needed and CI must run this test (make deps-test installs it)", name)
		}
		t.Skipf("skipped: %s is not installed (make deps-test installs it)", name)
	}
}
