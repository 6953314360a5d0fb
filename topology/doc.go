// Package topology builds and removes the two-host bench closeduel works on:
// a client namespace, a bridge namespace with br0 (where closeduel runs
// inline) and a device, either a Linux stack in its own namespace or a tap
// port of br0 for a user-space stack. It needs root.
package topology
