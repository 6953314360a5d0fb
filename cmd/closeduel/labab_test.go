package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestLabArgsWithout: --ab and its value leave the argument list in every
// spelling; the rest stays in order.
func TestLabArgsWithout(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"closeduel lab --ab timewait-guard", ""},
		{"closeduel lab --runs r --ab timewait-guard --quiet 5s", "--runs r --quiet 5s"},
		{"closeduel --log-level debug lab --ab=wide-ports --ports 40000-40001", "--ports 40000-40001"},
		{"closeduel lab -ab linger0 --name x", "--name x"},
	} {
		if got := strings.Join(labArgsWithout(strings.Fields(c.in), "ab"), " "); got != c.want {
			t.Errorf("%q: %q, want %q", c.in, got, c.want)
		}
	}
}

// TestABTargets: a mitigation names its experiment and workload; an
// endpoint fix applies to the reuse workload; an unknown name lists the
// known ones.
func TestABTargets(t *testing.T) {
	rules, workload, fix, err := abTargets("timewait-guard")
	if err != nil || rules != "reused-tuple" || !strings.Contains(strings.Join(workload, " "), "--ports 40000-40001") || strings.Join(fix, " ") != "--mitigation timewait-guard" {
		t.Errorf("timewait-guard: %q %q %q %v", rules, workload, fix, err)
	}
	if _, _, fix, err := abTargets("short-time-wait"); err != nil || strings.Join(fix, " ") != "--time-wait 200ms" {
		t.Errorf("short-time-wait: %q %v", fix, err)
	}
	if _, _, _, err := abTargets("timewait-gard"); err == nil || !strings.Contains(err.Error(), "known: close-second, duel-quench") {
		t.Errorf("unknown name: %v", err)
	}
}

// TestFlagMap: an endpoint fix's flags become the matrix's settings, a
// sysctl flag its sysctl.
func TestFlagMap(t *testing.T) {
	got := flagMap([]string{"--close", "wait", "--linger0", "--rfc1337", "1", "--sysctl", "net.ipv4.tcp_max_tw_buckets=0"})
	want := map[string]string{"close": "wait", "linger0": "true", "sysctl net.ipv4.tcp_rfc1337": "1", "sysctl net.ipv4.tcp_max_tw_buckets": "0"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("flagMap: %v, want %v", got, want)
	}
}
