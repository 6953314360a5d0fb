//go:build !linux

package runstate

import (
	"errors"
	"fmt"
)

var errUnsupported = fmt.Errorf("runstate: %w (Linux only)", errors.ErrUnsupported)

// BoundQueues returns errors.ErrUnsupported.
func BoundQueues(string) ([]Queue, error) { return nil, errUnsupported }

// QueueUser finds nothing.
func QueueUser(string, uint16) (Queue, bool) { return Queue{}, false }

// Alive reports false.
func Alive(int) bool { return false }

// Capability is a Linux capability closeduel needs.
type Capability struct {
	Name string
	Bit  uint
	For  string
}

// The capabilities a run needs.
var (
	CapNetAdmin = Capability{"CAP_NET_ADMIN", 12, "binding an NFQUEUE and installing iptables rules"}
	CapNetRaw   = Capability{"CAP_NET_RAW", 13, "sending injected and duplicated segments (packet sockets)"}
	CapSysAdmin = Capability{"CAP_SYS_ADMIN", 21, "entering a named network namespace (--netns)"}
)

// Missing returns errors.ErrUnsupported.
func Missing(...Capability) ([]Capability, error) { return nil, errUnsupported }

// NamespaceUsers finds nothing.
func NamespaceUsers() map[uint64][]int { return nil }

// NamespaceInode returns errors.ErrUnsupported.
func NamespaceInode(string) (uint64, error) { return 0, errUnsupported }
