package nfq

import (
	"context"
	"fmt"
	"sync/atomic"

	nfqueue "github.com/florianl/go-nfqueue/v2"
	"github.com/mdlayher/netlink"
)

// LibraryPass binds queue with go-nfqueue's own callback API and accepts
// every packet with one SetVerdict call each, until ctx is done; it
// returns how many packets it accepted. It is not used inline: it is the
// reference that shows what the engine's raw batched path buys (closeduel
// bench --mode go-nfqueue).
func LibraryPass(ctx context.Context, queue uint16) (uint64, error) {
	q, err := nfqueue.Open(&nfqueue.Config{
		NfQueue:      queue,
		MaxPacketLen: 0xffff,
		MaxQueueLen:  4096,
		Copymode:     nfqueue.NfQnlCopyPacket,
		Flags:        nfqueue.NfQaCfgFlagFailOpen | nfqueue.NfQaCfgFlagGSO,
	})
	if err != nil {
		return 0, fmt.Errorf("nfq: go-nfqueue open: %w", err)
	}
	defer q.Close()
	if err := q.SetOption(netlink.NoENOBUFS, true); err != nil {
		return 0, fmt.Errorf("nfq: go-nfqueue NETLINK_NO_ENOBUFS: %w", err)
	}
	if err := q.Con.SetReadBuffer(8 << 20); err != nil {
		return 0, fmt.Errorf("nfq: go-nfqueue receive buffer: %w", err)
	}
	var n atomic.Uint64
	err = q.RegisterWithErrorFunc(ctx, func(a nfqueue.Attribute) int {
		if a.PacketID != nil {
			q.SetVerdict(*a.PacketID, nfqueue.NfAccept)
			n.Add(1)
		}
		return 0
	}, func(err error) int {
		if ctx.Err() != nil {
			return 1
		}
		return 0
	})
	if err != nil {
		return 0, fmt.Errorf("nfq: go-nfqueue register: %w", err)
	}
	<-ctx.Done()
	return n.Load(), nil
}
