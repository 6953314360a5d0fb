//go:build !linux

package topology

import (
	"context"
	"errors"
	"fmt"
)

var errUnsupported = fmt.Errorf("topology: network namespaces need Linux: %w", errors.ErrUnsupported)

// Topology is a built bench (never on this system).
type Topology struct {
	Config
	Client, Bridge, Device string
}

// Build returns errors.ErrUnsupported.
func Build(context.Context, Config) (*Topology, error) { return nil, errUnsupported }

// Namespaces returns nothing.
func (*Topology) Namespaces() []string { return nil }

// Close does nothing.
func (*Topology) Close() error { return nil }

// Sweep returns errors.ErrUnsupported.
func Sweep(string) ([]string, error) { return nil, errUnsupported }

// Leftovers returns nothing.
func Leftovers(string) ([]string, error) { return nil, nil }
