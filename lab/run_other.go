//go:build !linux

package lab

import "context"

// Run returns errors.ErrUnsupported: the bench needs Linux.
func Run(context.Context, Config) (*Result, error) { return nil, errUnsupported }

// SweepStale finds nothing to remove.
func SweepStale() ([]string, error) { return nil, nil }
