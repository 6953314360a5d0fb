// Package nfq is the inline queue engine: it binds a kernel NFQUEUE
// (through github.com/florianl/go-nfqueue/v2 and its netlink socket), decodes
// every queued packet in place, asks a Decider what to do, gives every packet
// exactly one verdict (accept, drop, accept-modified, after an optional hold),
// sends duplicates and crafted segments out of the bridge ports, and reports
// each verdict to a Recorder. Binding a queue and injecting need
// CAP_NET_ADMIN and CAP_NET_RAW; the types here need nothing. Nothing outside
// this package imports go-nfqueue.
package nfq
