// Package tcpstate is closeduel's one TCP model: the connection tracker the
// rules see the traffic through and the analysis is built on. It is a pure
// state machine that takes each segment seen on the wire and the time it
// was seen, infers both endpoints' RFC 9293 states (with the close-time
// quirks of Linux and lwIP), classifies the segment (retransmission,
// acknowledgment of a FIN or SYN, reuse of a recently closed 4-tuple,
// traffic after an RST) and keeps a bounded table of connections. It does
// no I/O, reads no clock and needs no privileges.
package tcpstate
