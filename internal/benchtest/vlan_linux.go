package benchtest

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/closeduel/closeduel/netns"
)

// TaggedHost gives namespace ns a second address, addr, whose frames leave
// by iface (the namespace's link to the bridge) with an 802.1Q tag for
// VLAN vid, and whose frames coming back with that tag reach it untagged:
// what a VLAN interface does. This kernel has neither the 8021q module nor
// tc's vlan action, so a relay of the test's own does it: a veth pair
// (vt0, holding addr, and vt1) and two packet sockets, one on vt1 that
// tags what vt0 sends and writes it out of iface, one on iface that hands
// the frames tagged vid (the kernel has moved the tag into the packet's
// auxiliary data) to vt1 without their tag. Frames without the tag, and
// the namespace's first address, are left alone. Everything is removed at
// the end of the test (before the topology).
func TaggedHost(t testing.TB, ns, iface string, vid uint16, addr netip.Prefix) {
	t.Helper()
	ctx := context.Background()
	for _, argv := range [][]string{
		{"ip", "link", "add", "vt0", "type", "veth", "peer", "name", "vt1"},
		{"ip", "addr", "add", addr.String(), "dev", "vt0"},
		{"ip", "link", "set", "vt0", "mtu", "1400", "up"},
		{"ip", "link", "set", "vt1", "up"},
		// The relay copies frames as they are: their checksums must be
		// whole, not left to an offload that a packet socket skips.
		{"ethtool", "-K", "vt0", "tx", "off"},
	} {
		if err := netns.Run(ctx, ns, argv...); err != nil {
			t.Fatal(err)
		}
	}
	var inner, outer int
	if err := netns.Do(ns, func() error {
		var err error
		if inner, err = packetSocket("vt1", false); err != nil {
			return err
		}
		outer, err = packetSocket(iface, true)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // vt0 -> iface, tagged
		defer wg.Done()
		buf := make([]byte, 65536)
		out := make([]byte, 0, 65536+4)
		for !stop.Load() {
			n, from, err := unix.Recvfrom(inner, buf, 0)
			if err != nil || n < 14 {
				continue
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); !ok || ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			out = append(out[:0], buf[:12]...)
			out = binary.BigEndian.AppendUint16(out, 0x8100)
			out = binary.BigEndian.AppendUint16(out, vid)
			out = append(out, buf[12:n]...)
			unix.Write(outer, out)
		}
	}()
	go func() { // iface -> vt0, the tag taken off
		defer wg.Done()
		buf := make([]byte, 65536)
		oob := make([]byte, 256)
		for !stop.Load() {
			n, oobn, _, from, err := unix.Recvmsg(outer, buf, oob, 0)
			if err != nil {
				continue
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); !ok || ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			if tagged, id := auxVLAN(oob[:oobn]); tagged && id == vid {
				unix.Write(inner, buf[:n])
			}
		}
	}()
	t.Cleanup(func() {
		stop.Store(true)
		wg.Wait()
		unix.Close(inner)
		unix.Close(outer)
		if err := netns.Run(ctx, ns, "ip", "link", "del", "vt0"); err != nil {
			t.Errorf("remove the tagged host: %v", err)
		}
	})
}

// packetSocket opens a packet socket bound to interface name, with a
// 100 ms receive timeout (so the relay sees its stop), and with the
// auxiliary data that carries a received frame's VLAN tag when aux.
func packetSocket(name string, aux bool) (int, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return -1, err
	}
	proto := int(htons(unix.ETH_P_ALL))
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if aux {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
			unix.Close(fd)
			return -1, err
		}
	}
	tv := unix.Timeval{Usec: 100000}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// auxVLAN reads the VLAN id from a packet socket's auxiliary data
// (struct tpacket_auxdata).
func auxVLAN(oob []byte) (bool, uint16) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return false, 0
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_PACKET || m.Header.Type != unix.PACKET_AUXDATA || len(m.Data) < 20 {
			continue
		}
		status := binary.NativeEndian.Uint32(m.Data[0:4])
		tci := binary.NativeEndian.Uint16(m.Data[16:18])
		return status&unix.TP_STATUS_VLAN_VALID != 0, tci & 0x0fff
	}
	return false, 0
}

// htons returns v in network byte order, as the packet socket calls want
// their protocol.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
