package lab

import (
	"errors"
	"os"
	"strconv"
	"strings"

	"github.com/closeduel/closeduel/netns"
	"github.com/closeduel/closeduel/topology"
	"golang.org/x/sys/unix"
)

// SweepStale removes the namespaces of lab runs whose process is gone (a
// run killed before it could clean up) and returns their names. Runs whose
// process still lives are left alone, so two labs can run at once. It only
// knows default names ("l<pid>") and the matrix's ("l<pid>x<cell>").
func SweepStale() ([]string, error) {
	names, err := netns.List(topology.NamePrefix + "l")
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, n := range names {
		rest := strings.TrimPrefix(n, topology.NamePrefix+"l")
		digits, _, ok := strings.Cut(rest, "-")
		if !ok {
			continue
		}
		digits, _, _ = strings.Cut(digits, "x") // a matrix's l<pid>x<cell>
		pid, err := strconv.Atoi(digits)
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := unix.Kill(pid, 0); !errors.Is(err, unix.ESRCH) {
			continue // alive (or not ours to judge)
		}
		if err := netns.Delete(n); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, n)
	}
	return removed, errors.Join(errs...)
}
