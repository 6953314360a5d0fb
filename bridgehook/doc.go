// Package bridgehook installs and removes the iptables rules that send
// bridged TCP to closeduel's NFQUEUE: a chain of its own (CLOSEDUEL-<queue>)
// jumped to from FORWARD, for IPv4 and IPv6, with --queue-bypass so traffic
// flows on when no engine is bound. It needs root and br_netfilter.
package bridgehook
