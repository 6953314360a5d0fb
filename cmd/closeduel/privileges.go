package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/closeduel/closeduel/runstate"
)

// checkPrivileges refuses to start a run without the capabilities it
// needs, naming each missing one and what needs it: CAP_NET_ADMIN (the
// queue, iptables), CAP_NET_RAW (injected and duplicated segments), and
// with --netns CAP_SYS_ADMIN (entering the namespace).
func checkPrivileges(netns string) error {
	need := []runstate.Capability{runstate.CapNetAdmin, runstate.CapNetRaw}
	if netns != "" {
		need = append(need, runstate.CapSysAdmin)
	}
	miss, err := runstate.Missing(need...)
	if errors.Is(err, errors.ErrUnsupported) {
		return nil // the engine says it needs Linux
	}
	if err != nil {
		return fmt.Errorf("run: cannot read this process's capabilities: %w", err)
	}
	if len(miss) == 0 {
		return nil
	}
	var parts, names []string
	for _, c := range miss {
		parts = append(parts, c.Name+" ("+c.For+")")
		names = append(names, strings.ToLower(c.Name))
	}
	return fmt.Errorf("run: missing %s: run as root, or give the binary the capabilities (setcap %s+ep closeduel)",
		strings.Join(parts, " and "), strings.Join(names, ","))
}

// queueInUse turns a failure to bind queue n in namespace ns into a clear
// error when another process has the queue bound (the kernel says only
// "operation not permitted", even to root); nil otherwise.
func queueInUse(ns string, n uint16) error {
	q, ok := runstate.QueueUser(ns, n)
	if !ok {
		return nil
	}
	where := ""
	if ns != "" {
		where = " in netns " + ns
	}
	return fmt.Errorf("run: queue %d%s is in use by %s: stop that run or choose another queue (--queue)", n, where, q.Describe())
}
