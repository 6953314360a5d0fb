// Package runstate tells the kernel state of a live closeduel run from what
// a crashed one left behind: which NFQUEUE numbers a process has bound (and
// which process), whether a control socket answers, whether a process is
// alive, and which capabilities this process holds. Reading another
// namespace's queues needs CAP_SYS_ADMIN (setns); the rest needs nothing.
package runstate
