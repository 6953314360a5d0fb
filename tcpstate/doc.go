// Package tcpstate is closeduel's one TCP model: the connection tracker the
// rules see the traffic through and the analysis is built on. It is a pure
// state machine that takes each segment seen on the wire and the time it
// was seen, infers both endpoints' RFC 9293 states (with the close-time
// quirks of Linux and lwIP), classifies the segment (retransmission,
// acknowledgment of a FIN or SYN, reuse of a recently closed 4-tuple,
// traffic after an RST) and keeps a bounded table of connections. It does
// no I/O, reads no clock and needs no privileges.
//
// Time is a time.Time throughout the package (Sent's and Deliver's now,
// every Conn and Endpoint time), the convention of its callers on the
// engine's path: rules.Decider and mitigate get the engine's receive time
// with its monotonic reading, so a TIME-WAIT's 60 s is measured on the
// monotonic clock even when the wall clock is stepped, and the zero Time
// means "never", distinct from every capture time (captures stamped at the
// Unix epoch exist; int64 ns would need a flag beside each field to say
// "never"). Passing a time.Time allocates nothing; Sent and Deliver stay at
// 0 allocations. The analysis reads capture timestamps as int64 ns since
// the epoch, the form its report layers (histories, duels, quantiles)
// compute in, and converts at one boundary only, analysis.Analyzer's
// packet: time.Unix(0, ns) into the tracker, ClosedAt.UnixNano() back, the
// only tracker time it reads. That conversion is integer arithmetic
// without allocation; with it the analysis took 1.00 s of CPU where
// tshark -2 took 12.6 s on the same 1M-packet capture
// (analysis.BenchmarkVersusTshark, 2026-11-29). The cost of the convention is memory:
// each time is 24 bytes where int64 would take 8 (a Conn is 576 bytes, 240
// of them times).
package tcpstate
