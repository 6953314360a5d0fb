//go:build !linux

package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

var errUnsupported = fmt.Errorf("bench: needs Linux: %w", errors.ErrUnsupported)

// Mode names one way of putting the bridge's traffic through user space.
type Mode string

// Config configures a run (see the Linux build).
type Config struct {
	Rounds       int
	Duration     time.Duration
	Workloads    []Workload
	Modes        []Mode
	AnchorSource string
	Exe          string
	Seed         uint64
	Progress     io.Writer
}

// Report holds every cell of a run.
type Report struct{ Config Config }

// Run returns errors.ErrUnsupported.
func Run(context.Context, Config) (*Report, error) { return nil, errUnsupported }

// Write prints nothing.
func (*Report) Write(io.Writer) {}
