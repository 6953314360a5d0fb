package runstate

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseQueuesAndNetlink(t *testing.T) {
	// As the kernel writes them (6.x).
	queues := "    7  48919     0 2 65531     0     0      392  1\n   42 4294967   3 2  4096     1     0        9  1\n"
	want := []Queue{{Number: 7, PortID: 48919}, {Number: 42, PortID: 4294967}}
	if diff := cmp.Diff(want, parseQueues(queues)); diff != "" {
		t.Errorf("queues (-want +got):\n%s", diff)
	}
	links := `sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode
000000000c25ccd5 0   0          00000000 0        0        0     2        0        4
00000000eb0ea762 12  48919      00000000 0        0        0     2        0        81234
00000000eb0ea763 16  48919      00000000 0        0        0     2        0        81235
`
	if diff := cmp.Diff(map[uint32]uint64{48919: 81234}, parseNetlink(links)); diff != "" {
		t.Errorf("netlink (-want +got):\n%s", diff)
	}
}

func TestExited(t *testing.T) {
	for _, tc := range []struct {
		stat string
		want bool
	}{
		{"1234 (closeduel) S 1 1234 1234 0 -1", false},
		{"1234 (closeduel) R 1 1234 1234 0 -1", false},
		{"1234 (closeduel) Z 1 1234 1234 0 -1", true},
		{"1234 (closeduel) X 1 1234 1234 0 -1", true},
		{"1234 (a) Z (b)) S 1 1234 1234 0 -1", false},
		{"1234 (a) S (b)) Z 1 1234 1234 0 -1", true},
		{"", false},
		{"1234 (x)", false},
	} {
		if got := exited(tc.stat); got != tc.want {
			t.Errorf("exited(%q) = %v, want %v", tc.stat, got, tc.want)
		}
	}
}
