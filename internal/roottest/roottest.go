// Package roottest guards tests that need root and the real kernel: they
// skip with a message that says why when not root, and fail instead of
// skipping under CI (CI=true), where every test must run.
package roottest

import (
	"os"
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
