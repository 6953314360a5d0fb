package runstate

import (
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Queue is a bound NFQUEUE.
type Queue struct {
	// Number is the queue number.
	Number uint16
	// PortID is the netlink port id of the socket bound to it.
	PortID uint32
	// PID is the process that holds that socket (0 when not found).
	PID int
}

// Describe says who holds the queue: "pid 1234 (closeduel run --netns x)"
// or "an unknown process (netlink port 5678)".
func (q Queue) Describe() string {
	if q.PID == 0 {
		return "an unknown process (netlink port " + strconv.FormatUint(uint64(q.PortID), 10) + ")"
	}
	s := "pid " + strconv.Itoa(q.PID)
	if cmd := Cmdline(q.PID); cmd != "" {
		s += " (" + cmd + ")"
	}
	return s
}

// Cmdline returns process pid's command line, space-separated and cut at
// 80 characters ("" when it cannot be read).
func Cmdline(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return ""
	}
	s := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

// SocketAnswers reports whether a Unix socket at path accepts a
// connection: a live run's control socket does, a crashed run's file does
// not.
func SocketAnswers(path string) bool {
	c, err := net.DialTimeout("unix", path, 300*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// parseQueues reads /proc/net/netfilter/nfnetlink_queue: one line per
// bound queue, "number portid waiting copy-mode copy-range ...".
func parseQueues(text string) []Queue {
	var qs []Queue
	for _, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		n, err1 := strconv.ParseUint(f[0], 10, 16)
		p, err2 := strconv.ParseUint(f[1], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		qs = append(qs, Queue{Number: uint16(n), PortID: uint32(p)})
	}
	return qs
}

// parseNetlink reads /proc/net/netlink and returns the inode of each
// netfilter (protocol 12) socket by port id.
func parseNetlink(text string) map[uint32]uint64 {
	m := map[uint32]uint64{}
	for _, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		if len(f) < 10 || f[1] != "12" {
			continue
		}
		p, err1 := strconv.ParseUint(f[2], 10, 32)
		ino, err2 := strconv.ParseUint(f[9], 10, 64)
		if err1 == nil && err2 == nil {
			m[uint32(p)] = ino
		}
	}
	return m
}

// exited reports whether a /proc/<pid>/stat line, "pid (comm) S ...",
// is a process that has exited: zombie (Z) or dead (X). The command name
// may hold spaces and parentheses: the state follows the last ")".
func exited(stat string) bool {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return false
	}
	switch stat[i+2] {
	case 'Z', 'X', 'x':
		return true
	}
	return false
}
