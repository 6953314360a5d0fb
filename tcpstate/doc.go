// Package tcpstate is closeduel's one TCP model: the connection tracker the
// rules see the traffic through and the analysis is built on. It is a pure
// state machine that takes each segment seen on the wire and the time it
// was seen, infers both endpoints' RFC 9293 states (with the close-time
// quirks of Linux and lwIP), classifies the segment (retransmission,
// acknowledgment of a FIN or SYN, reuse of a recently closed 4-tuple,
// traffic after an RST) and keeps a bounded table of connections. It does
// no I/O, reads no clock and needs no privileges.
//
// Times go in as time.Time (Sent's and Deliver's now), the convention of
// the callers: rules.Decider and mitigate pass the engine's receive time
// with its monotonic reading, the analysis a capture's timestamp
// (time.Unix(0, ns), at its one boundary, analysis.Analyzer's packet). A
// Tracker keeps them in its Conns and Endpoints as Time, int64 ns since an
// epoch taken from the first time it was given, so a TIME-WAIT's 60 s is
// still measured on the monotonic clock when the wall clock is stepped,
// and 0 still means "never", distinct from every capture time (captures
// stamped at the Unix epoch exist). Tracker.Time turns one back (the
// analysis reads ClosedAt.UnixNano() so). Each time takes 8 bytes where a
// time.Time takes 24: a Conn is 360 bytes (576 with time.Time and the
// fields in their former order), so 100k tracked connections take 36 MiB
// of heap (rules.TestMemoryWith100kConnections) and closeduel run with
// its log and pcapng peaks at 85 MiB resident with them
// (cmd/closeduel's TestRSSWith100kConnections). The conversions are
// integer arithmetic without allocation; Sent and Deliver stay at 0
// allocations.
package tcpstate
