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

// Matched returns errors.ErrUnsupported.
func (*Hook) Matched() (uint64, error) { return 0, errUnsupported }

// RemoveCounting returns errors.ErrUnsupported.
func (*Hook) RemoveCounting() (uint64, error) { return 0, errUnsupported }

// Cleanup returns errors.ErrUnsupported.
func Cleanup(context.Context, string) ([]string, error) { return nil, errUnsupported }

// Leftovers returns errors.ErrUnsupported.
func Leftovers(context.Context, string) ([]string, error) { return nil, errUnsupported }

// Chain is one of this package's chains found in a namespace.
type Chain struct{ Bin, Name string }

// Chains returns errors.ErrUnsupported.
func Chains(context.Context, string) ([]Chain, error) { return nil, errUnsupported }

// RemoveChain returns errors.ErrUnsupported.
func RemoveChain(context.Context, string, Chain) error { return errUnsupported }
