//go:build !linux

package netns

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
)

var errUnsupported = fmt.Errorf("netns: network namespaces need Linux: %w", errors.ErrUnsupported)

// Path returns the bind-mount path of the named namespace.
func Path(name string) string { return "/run/netns/" + name }

// Exists reports false: there are no namespaces here.
func Exists(string) bool { return false }

// Add returns errors.ErrUnsupported.
func Add(context.Context, string) error { return errUnsupported }

// Delete returns nil: there is nothing to delete.
func Delete(string) error { return nil }

// List returns no names.
func List(string) ([]string, error) { return nil, nil }

// Command runs argv where we are when name is empty and fails otherwise.
func Command(ctx context.Context, name string, argv ...string) *exec.Cmd {
	return exec.CommandContext(ctx, argv[0], argv[1:]...)
}

// Run returns errors.ErrUnsupported for a named namespace.
func Run(context.Context, string, ...string) error { return errUnsupported }

// Output returns errors.ErrUnsupported.
func Output(context.Context, string, ...string) (string, error) { return "", errUnsupported }

// Do runs fn when name is empty and fails otherwise.
func Do(name string, fn func() error) error {
	if name == "" {
		return fn()
	}
	return errUnsupported
}
