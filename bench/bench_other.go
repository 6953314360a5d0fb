//go:build !linux

package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
)

var errUnsupported = fmt.Errorf("bench: needs Linux: %w", errors.ErrUnsupported)

// Run returns errors.ErrUnsupported.
func Run(context.Context, Config) (*Report, error) { return nil, errUnsupported }

// Write prints nothing.
func (*Report) Write(io.Writer) {}
