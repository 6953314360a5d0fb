package lab

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/closeduel/closeduel/netns"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/sys/unix"
)

// Capture records every frame a bridge sees into a pcapng file: it reads
// the bridge interface in promiscuous mode through an AF_PACKET socket, so
// it holds each frame as a host sent it into the bridge, before any
// middlebox verdict.
type Capture struct {
	fd      int
	file    *os.File
	buf     *bufio.Writer
	w       *pcapgo.NgWriter
	onFrame func(time.Time, []byte)
	frames  atomic.Uint64
}

// OpenCapture opens a capture of iface in namespace ns into path. onFrame,
// when not nil, sees each frame (valid only during the call) from the
// goroutine that calls Run.
func OpenCapture(ns, iface, path string, onFrame func(time.Time, []byte)) (*Capture, error) {
	c := &Capture{fd: -1, onFrame: onFrame}
	err := netns.Do(ns, func() error {
		ifc, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		c.fd = fd
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifc.Index}); err != nil {
			return fmt.Errorf("bind to %s: %w", iface, err)
		}
		mreq := unix.PacketMreq{Ifindex: int32(ifc.Index), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
			return fmt.Errorf("promiscuous mode: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			return fmt.Errorf("timestamps: %w", err)
		}
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20) //nolint:errcheck // a smaller buffer still works
		tv := unix.Timeval{Usec: 100_000}
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return fmt.Errorf("receive timeout: %w", err)
		}
		return nil
	})
	if err != nil {
		if c.fd >= 0 {
			unix.Close(c.fd)
		}
		return nil, fmt.Errorf("lab: capture on %s in %s: %w", iface, ns, err)
	}
	f, err := os.Create(path)
	if err != nil {
		unix.Close(c.fd)
		return nil, fmt.Errorf("lab: capture: %w", err)
	}
	c.file = f
	c.buf = bufio.NewWriterSize(f, 1<<16)
	c.w, err = pcapgo.NewNgWriterInterface(c.buf, pcapgo.NgInterface{
		Name:                iface,
		Description:         "bridge " + iface + " in namespace " + ns,
		LinkType:            layers.LinkTypeEthernet,
		SnapLength:          65535,
		TimestampResolution: 9,
	}, pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "closeduel lab"}})
	if err != nil {
		unix.Close(c.fd)
		f.Close()
		return nil, fmt.Errorf("lab: capture: %w", err)
	}
	return c, nil
}

// Frames returns how many frames were captured so far.
func (c *Capture) Frames() uint64 { return c.frames.Load() }

// Run captures until ctx is done, then flushes and closes the file.
func (c *Capture) Run(ctx context.Context) error {
	buf := make([]byte, 65536)
	oob := make([]byte, 128)
	var runErr error
	for ctx.Err() == nil {
		n, oobn, _, _, err := unix.Recvmsg(c.fd, buf, oob, unix.MSG_TRUNC)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			runErr = fmt.Errorf("lab: capture: %w", err)
			break
		}
		at := stamp(oob[:oobn])
		capLen := min(n, len(buf))
		ci := gopacket.CaptureInfo{Timestamp: at, CaptureLength: capLen, Length: n, InterfaceIndex: 0}
		if err := c.w.WritePacket(ci, buf[:capLen]); err != nil {
			runErr = fmt.Errorf("lab: capture: %w", err)
			break
		}
		c.frames.Add(1)
		if c.onFrame != nil {
			c.onFrame(at, buf[:capLen])
		}
	}
	return errors.Join(runErr, c.close())
}

func (c *Capture) close() error {
	err := c.w.Flush()
	err = errors.Join(err, c.buf.Flush(), c.file.Close())
	unix.Close(c.fd)
	if err != nil {
		return fmt.Errorf("lab: capture: %w", err)
	}
	return nil
}

// stamp returns the kernel's receive time from the control messages, or
// now when there is none.
func stamp(oob []byte) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err == nil {
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
				sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
				nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
				return time.Unix(sec, nsec)
			}
		}
	}
	return time.Now()
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
