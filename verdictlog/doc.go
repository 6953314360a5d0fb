// Package verdictlog records what the nfq engine did to every packet: a
// JSON Lines verdict log and a pcapng capture whose frames carry the verdict
// as their comment. Its Writer is an nfq.Recorder that copies each event
// into a preallocated slot without blocking or allocating, and a single
// writer goroutine turns the slots into file records, so the packet path
// never waits on the disk; events that find every slot in use are counted
// as lost, never dropped silently. The format is described in SCHEMA.md.
// It needs no privileges beyond creating its two files.
package verdictlog
