package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/closeduel/closeduel/netns"
)

// probeDevice pings the device from the client namespace until it answers
// (at most within limit). It makes sure the device serves and fills the
// client's ARP cache before the workload starts, so the first request does
// not pay for address resolution. The echoes are ICMP: they add no TCP
// segment to the run.
func probeDevice(ctx context.Context, ns string, device netip.Addr, limit time.Duration) error {
	var conn net.PacketConn
	if err := netns.Do(ns, func() (err error) {
		conn, err = net.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	}); err != nil {
		return fmt.Errorf("lab: probe: %w", err)
	}
	defer conn.Close()
	dst := &net.IPAddr{IP: device.AsSlice()}
	deadline := time.Now().Add(limit)
	buf := make([]byte, 1500)
	for seq := uint16(1); time.Now().Before(deadline); seq++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := conn.WriteTo(echoRequest(0xcd1a, seq), dst); err != nil {
			return fmt.Errorf("lab: probe: %w", err)
		}
		conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond)) //nolint:errcheck
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				break // timed out: send the next echo
			}
			ip, ok := from.(*net.IPAddr)
			if ok && ip.IP.Equal(dst.IP) && n >= 8 && buf[0] == 0 { // echo reply
				return nil
			}
		}
	}
	return fmt.Errorf("lab: the device at %s did not answer pings from the client within %s", device, limit)
}

// echoRequest builds an ICMP echo request.
func echoRequest(id, seq uint16) []byte {
	b := []byte{8, 0, 0, 0, byte(id >> 8), byte(id), byte(seq >> 8), byte(seq), 'c', 'l', 'o', 's', 'e', 'd', 'u', 'e'}
	var sum uint32
	for i := 0; i < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	cs := ^uint16(sum)
	b[2], b[3] = byte(cs>>8), byte(cs)
	return b
}
