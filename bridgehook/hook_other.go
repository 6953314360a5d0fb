//go:build !linux

package bridgehook

import (
	"context"
	"errors"
	"fmt"
)

var errUnsupported = fmt.Errorf("bridgehook: iptables and bridges need Linux: %w", errors.ErrUnsupported)

// Hook is an installed set of rules (never on this system).
type Hook struct{}

// CheckBridgeNetfilter returns errors.ErrUnsupported.
func CheckBridgeNetfilter(string) error { return errUnsupported }

// Install returns errors.ErrUnsupported.
func Install(context.Context, Config) (*Hook, error) { return nil, errUnsupported }

// Remove does nothing.
func (*Hook) Remove() error { return nil }

// Cleanup returns errors.ErrUnsupported.
func Cleanup(context.Context, string) ([]string, error) { return nil, errUnsupported }

// Leftovers returns errors.ErrUnsupported.
func Leftovers(context.Context, string) ([]string, error) { return nil, errUnsupported }
