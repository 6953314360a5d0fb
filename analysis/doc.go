// Package analysis turns packet captures (pcap, pcapng) and closeduel's
// verdict logs (pcapng with verdict comments, JSON Lines) into the answer
// an experiment is run for: the connections per 4-tuple incarnation, how
// each closed, the duels (ping-pong on a tuple after a close) and the
// totals, as text, JSON or a self-contained HTML page. It streams: memory
// grows with the live connections, not with the size of the inputs. It
// needs no privileges. DEFINITIONS.md beside this file defines every
// figure it reports.
package analysis
