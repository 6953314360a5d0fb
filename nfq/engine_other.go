//go:build !linux

package nfq

import (
	"context"
	"errors"
	"fmt"
)

var errUnsupported = fmt.Errorf("nfq: NFQUEUE needs Linux: %w", errors.ErrUnsupported)

// Engine is unavailable on this system.
type Engine struct{}

// KernelQueueStats are the kernel's counters for one queue.
type KernelQueueStats struct{ QueueTotal, QueueDropped, UserDropped, IDSequence uint64 }

// Open returns errors.ErrUnsupported.
func Open(Config) (*Engine, error) { return nil, errUnsupported }

// Run returns errors.ErrUnsupported.
func (*Engine) Run(context.Context) error { return errUnsupported }

// Stats returns an empty snapshot.
func (*Engine) Stats() Snapshot { return Snapshot{} }

// KernelStats returns errors.ErrUnsupported.
func (*Engine) KernelStats() (KernelQueueStats, error) { return KernelQueueStats{}, errUnsupported }

// Close does nothing.
func (*Engine) Close() error { return nil }

// LibraryPass returns errors.ErrUnsupported.
func LibraryPass(context.Context, uint16) (uint64, error) { return 0, errUnsupported }

// SetCopyRange returns errors.ErrUnsupported.
func (*Engine) SetCopyRange(uint32) error { return errUnsupported }

// CopyRange returns 0.
func (*Engine) CopyRange() uint32 { return 0 }

// Group is unavailable on this system.
type Group struct{}

// OpenGroup returns errors.ErrUnsupported.
func OpenGroup(Config, int) (*Group, error) { return nil, errUnsupported }

// Run returns errors.ErrUnsupported.
func (*Group) Run(context.Context) error { return errUnsupported }

// Stats returns an empty snapshot.
func (*Group) Stats() Snapshot { return Snapshot{} }

// SetCopyRange returns errors.ErrUnsupported.
func (*Group) SetCopyRange(uint32) error { return errUnsupported }

// Close does nothing.
func (*Group) Close() error { return nil }
