// Package bench measures closeduel's inline engine against its anchors in
// one interleaved run: the kernel bridge with no queue (the limit of the
// machine) and the C libnetfilter_queue pass-through from shared/anchors.
// Every inline program runs as its own process in the bridge namespace; the
// load runs from this process between a client and a device namespace.
// It reports medians and ratios. It needs root.
package bench
