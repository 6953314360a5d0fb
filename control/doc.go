// Package control is closeduel run's control interface: a Unix socket that
// takes one command line per connection ("enable NAME", "disable NAME",
// "reload", "status") and answers with text, so mitigations and rules can be
// switched at run time for A/B tests. It needs no privileges beyond access
// to the socket file, which is created mode 0600.
package control
