package runstate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/closeduel/closeduel/netns"
)

// BoundQueues returns the NFQUEUEs bound in the named network namespace
// ("" for this process's), with the process that holds each.
func BoundQueues(ns string) ([]Queue, error) {
	var queues, links string
	err := netns.Do(ns, func() error {
		// thread-self: the namespace of this (locked) thread, which is
		// the one netns.Do entered, not the process's.
		b, err := os.ReadFile("/proc/thread-self/net/netfilter/nfnetlink_queue")
		if errors.Is(err, os.ErrNotExist) {
			return nil // nfnetlink_queue not loaded: nothing is bound
		}
		if err != nil {
			return err
		}
		queues = string(b)
		b, err = os.ReadFile("/proc/thread-self/net/netlink")
		links = string(b)
		return err
	})
	if err != nil {
		return nil, err
	}
	qs := parseQueues(queues)
	if len(qs) == 0 {
		return nil, nil
	}
	inodes := parseNetlink(links)
	owners := socketOwners()
	for i := range qs {
		if ino, ok := inodes[qs[i].PortID]; ok {
			qs[i].PID = owners[ino]
		}
	}
	return qs, nil
}

// QueueUser returns who holds queue n in namespace ns, if anyone.
func QueueUser(ns string, n uint16) (Queue, bool) {
	qs, err := BoundQueues(ns)
	if err != nil {
		return Queue{}, false
	}
	for _, q := range qs {
		if q.Number == n {
			return q, true
		}
	}
	return Queue{}, false
}

// socketOwners maps socket inodes to the pid of a process holding them.
func socketOwners() map[uint64]int {
	m := map[uint64]int{}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join("/proc", p.Name(), "fd")
		fds, _ := os.ReadDir(dir)
		for _, fd := range fds {
			l, err := os.Readlink(filepath.Join(dir, fd.Name()))
			if err != nil || !strings.HasPrefix(l, "socket:[") {
				continue
			}
			if ino, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]"), 10, 64); err == nil {
				if _, seen := m[ino]; !seen {
					m[ino] = pid
				}
			}
		}
	}
	return m
}

// Alive reports whether process pid exists and has not exited: a zombie
// (dead, not yet reaped by its parent) is not alive, though kill(pid, 0)
// still finds it.
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := unix.Kill(pid, 0); err != nil && !errors.Is(err, unix.EPERM) {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	return !exited(string(b))
}

// Capability is a Linux capability closeduel needs.
type Capability struct {
	// Name is the capability's name, CAP_NET_ADMIN.
	Name string
	// Bit is its number.
	Bit uint
	// For says what needs it.
	For string
}

// The capabilities a run needs.
var (
	CapNetAdmin = Capability{"CAP_NET_ADMIN", unix.CAP_NET_ADMIN, "binding an NFQUEUE and installing iptables rules"}
	CapNetRaw   = Capability{"CAP_NET_RAW", unix.CAP_NET_RAW, "sending injected and duplicated segments (packet sockets)"}
	CapSysAdmin = Capability{"CAP_SYS_ADMIN", unix.CAP_SYS_ADMIN, "entering a named network namespace (--netns)"}
)

// Missing returns those of caps this process does not hold in its
// effective set.
func Missing(caps ...Capability) ([]Capability, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, err
	}
	var eff uint64
	found := false
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			eff, err = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return nil, err
			}
			found = true
		}
	}
	if !found {
		return nil, errors.New("runstate: no CapEff in /proc/self/status")
	}
	var miss []Capability
	for _, c := range caps {
		if eff&(1<<c.Bit) == 0 {
			miss = append(miss, c)
		}
	}
	return miss, nil
}

// NamespaceUsers maps the inode of each network namespace to the
// processes one of whose threads is in it (a thread that entered a named
// namespace with setns counts), this process excepted.
func NamespaceUsers() map[uint64][]int {
	m := map[uint64][]int{}
	self := os.Getpid()
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == self {
			continue
		}
		tasks, _ := os.ReadDir(filepath.Join("/proc", p.Name(), "task"))
		seen := map[uint64]bool{}
		for _, task := range tasks {
			var st unix.Stat_t
			if unix.Stat(filepath.Join("/proc", p.Name(), "task", task.Name(), "ns", "net"), &st) != nil || seen[st.Ino] {
				continue
			}
			seen[st.Ino] = true
			m[st.Ino] = append(m[st.Ino], pid)
		}
	}
	return m
}

// NamespaceInode returns the inode of the network namespace bound at path
// (/run/netns/NAME), the key of NamespaceUsers.
func NamespaceInode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("runstate: %w", err)
	}
	return st.Ino, nil
}
