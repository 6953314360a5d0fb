package topology

import "net/netip"

// Config describes a bench. The zero value (with a Name) is the lab's
// default: 192.168.100.1/24 for the client, 192.168.100.99/24 for a Linux
// device in its own namespace.
type Config struct {
	// Name makes the namespace names unique: cd-<Name>-client and so on.
	// Keep it short (at most 8 characters).
	Name string
	// ClientAddr and DeviceAddr are the hosts' addresses.
	ClientAddr, DeviceAddr netip.Prefix
	// DeviceTap makes the device port a tap in the bridge namespace, for a
	// user-space stack that opens it (no device namespace is made).
	DeviceTap bool
	// SpreadCPUs leaves receive packet steering as the kernel has it. By
	// default every port steers to CPU 0 so frames of one flow cannot be
	// reordered between per-CPU backlogs.
	SpreadCPUs bool
	// KeepOffload leaves TX checksum offload on. By default it is turned
	// off on the hosts' interfaces so captures show valid checksums.
	KeepOffload bool
}
