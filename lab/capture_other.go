//go:build !linux

package lab

import (
	"context"
	"time"
)

// Capture records every frame a bridge sees; it needs Linux.
type Capture struct{}

// OpenCapture returns errors.ErrUnsupported.
func OpenCapture(ns, iface, path string, onFrame func(time.Time, []byte)) (*Capture, error) {
	return nil, errUnsupported
}

// Frames returns 0.
func (c *Capture) Frames() uint64 { return 0 }

// Run returns errors.ErrUnsupported.
func (c *Capture) Run(context.Context) error { return errUnsupported }
