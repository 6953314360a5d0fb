// Package mitigate holds closeduel's middlebox mitigations: named,
// stateful fixes that the rules' Decider runs on every segment between
// the experiment's client and device, switched on and off at run time.
// Each targets one close-duel mechanism, documented with its Info. The
// per-packet path allocates nothing. It needs no privileges: it reads the
// connection tracker and rewrites packets in memory; the engine sends
// what it asks for.
package mitigate
