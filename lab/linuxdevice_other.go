//go:build !linux

package lab

import (
	"context"
	"io"
)

// ServeLinux returns errors.ErrUnsupported: the control device is a Linux
// stack.
func ServeLinux(context.Context, LinuxDeviceConfig, io.Writer) error { return errUnsupported }
