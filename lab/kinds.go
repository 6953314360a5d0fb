package lab

import (
	"fmt"

	"github.com/closeduel/closeduel/tcpstate"
)

// DeviceKind says which TCP stack plays the device.
type DeviceKind uint8

// Device kinds.
const (
	// DeviceLwIP is Debian's lwIP driven by the embedded device program
	// on a tap port of the bridge.
	DeviceLwIP DeviceKind = iota
	// DeviceLinux is a Linux stack in its own namespace: the control group.
	DeviceLinux
)

// String returns "lwip" or "linux".
func (k DeviceKind) String() string {
	switch k {
	case DeviceLwIP:
		return "lwip"
	case DeviceLinux:
		return "linux"
	}
	return fmt.Sprintf("device(%d)", uint8(k))
}

// ClientStack is the TCP stack of the bench's client: the host's Linux.
const ClientStack = tcpstate.Linux

// Stack returns the TCP stack a device of kind k runs. With ClientStack it
// is the one source of the roles' stacks on the bench: the engine's rules,
// the live summary and run.yaml (which analyze --run reads) all take them
// from here.
func (k DeviceKind) Stack() tcpstate.Stack {
	if k == DeviceLinux {
		return tcpstate.Linux
	}
	return tcpstate.LwIP
}

// ParseDeviceKind parses "lwip" or "linux".
func ParseDeviceKind(s string) (DeviceKind, error) {
	for _, k := range []DeviceKind{DeviceLwIP, DeviceLinux} {
		if s == k.String() {
			return k, nil
		}
	}
	return 0, fmt.Errorf("lab: unknown device %q (want lwip or linux)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (k DeviceKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *DeviceKind) UnmarshalText(b []byte) (err error) {
	*k, err = ParseDeviceKind(string(b))
	return err
}

// CloseMode says how the device ends a connection once it has answered.
type CloseMode uint8

// Close modes.
const (
	// CloseAfterSend closes (FIN) as soon as the response is acknowledged,
	// from lwIP's sent callback, as NodeMCU's net server does: the server
	// closes first.
	CloseAfterSend CloseMode = iota
	// CloseWaitClient waits for the client's FIN and closes then.
	CloseWaitClient
	// CloseAbort aborts (RST) instead of closing once the response is
	// acknowledged.
	CloseAbort
)

// String returns "close", "wait" or "abort" (the device program's words).
func (m CloseMode) String() string {
	switch m {
	case CloseAfterSend:
		return "close"
	case CloseWaitClient:
		return "wait"
	case CloseAbort:
		return "abort"
	}
	return fmt.Sprintf("close(%d)", uint8(m))
}

// ParseCloseMode parses "close", "wait" or "abort".
func ParseCloseMode(s string) (CloseMode, error) {
	for _, m := range []CloseMode{CloseAfterSend, CloseWaitClient, CloseAbort} {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, fmt.Errorf("lab: unknown close mode %q (want close, wait or abort)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (m CloseMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *CloseMode) UnmarshalText(b []byte) (err error) {
	*m, err = ParseCloseMode(string(b))
	return err
}
