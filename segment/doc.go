// Package segment holds the decoded view of one TCP/IP segment, the
// wraparound-safe sequence number type, and the allocation-free code that
// decodes, rewrites (with checksums recomputed) and builds raw segments.
// It needs no privileges and does no I/O.
package segment
