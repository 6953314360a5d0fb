package topology

// Interface names inside the namespaces (each namespace has its own, so
// these never collide between runs).
const (
	BridgeName = "br0"  // the bridge, in the bridge namespace
	ClientPort = "c0"   // bridge port toward the client
	DevicePort = "d0"   // bridge port toward a Linux device
	TapName    = "tap0" // bridge port of a user-space device
	HostIface  = "eth0" // the interface inside the client and device namespaces
	NamePrefix = "cd-"  // every namespace this package makes starts so
	defaultCPU = "1"    // RPS mask that steers every port to CPU 0
)
