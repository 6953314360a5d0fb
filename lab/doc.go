// Package lab rebuilds the bench where the close duel was seen — a Linux
// client, a bridge and an embedded web server — on one machine, and runs an
// experiment through it end to end: it builds the topology (package
// topology), starts the device (Debian's lwIP driven by the C program
// embedded from device/, compiled on demand, or a Linux stack as the control
// group), runs the original workload from the client namespace, captures
// every frame on the bridge, lets an Inline middlebox sit on the bridge,
// shows progress, and leaves a run directory that says how to repeat the run.
//
// Running an experiment needs root (namespaces, taps, sysctls, packet
// sockets) and Linux; the schedule, summary and run record types need
// neither.
package lab
