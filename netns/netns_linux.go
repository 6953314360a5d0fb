package netns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Dir is where named namespaces are bound, as iproute2 does.
const Dir = "/run/netns"

// Path returns the bind-mount path of the named namespace.
func Path(name string) string { return filepath.Join(Dir, name) }

// Exists reports whether a namespace of that name is bound.
func Exists(name string) bool {
	_, err := os.Stat(Path(name))
	return err == nil
}

// Add creates a named namespace with `ip netns add` and brings its
// loopback up.
func Add(ctx context.Context, name string) error {
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("netns: add %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	if err := Run(ctx, name, "ip", "link", "set", "lo", "up"); err != nil {
		return err
	}
	return nil
}

// Delete removes a named namespace; a namespace that does not exist is not
// an error. Interfaces inside it go with it.
func Delete(name string) error {
	if !Exists(name) {
		return nil
	}
	out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput()
	if err != nil && Exists(name) {
		return fmt.Errorf("netns: delete %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// List returns the names of the bound namespaces that start with prefix.
func List(prefix string) ([]string, error) {
	entries, err := os.ReadDir(Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("netns: list: %w", err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Command returns a command that runs argv inside the named namespace
// (through `ip netns exec`); an empty name runs it where we are.
func Command(ctx context.Context, name string, argv ...string) *exec.Cmd {
	if name == "" {
		return exec.CommandContext(ctx, argv[0], argv[1:]...)
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", name}, argv...)...)
}

// Run runs argv inside the named namespace and returns an error that
// carries its output when it fails.
func Run(ctx context.Context, name string, argv ...string) error {
	out, err := Command(ctx, name, argv...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netns %s: %s: %w: %s", name, strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Output runs argv inside the named namespace and returns its standard
// output.
func Output(ctx context.Context, name string, argv ...string) (string, error) {
	cmd := Command(ctx, name, argv...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("netns %s: %s: %w: %s", name, strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// Do runs fn on an OS thread that has entered the named namespace, then
// returns the thread to the namespace it came from. Sockets that fn opens
// stay in the named namespace for their whole life, whichever thread uses
// them later. An empty name runs fn where we are.
func Do(name string, fn func() error) error {
	if name == "" {
		return fn()
	}
	target, err := os.Open(Path(name))
	if err != nil {
		return fmt.Errorf("netns: open %s: %w", name, err)
	}
	defer target.Close()

	runtime.LockOSThread()
	origin, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: open own namespace: %w", err)
	}
	defer origin.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: enter %s: %w", name, err)
	}
	fnErr := fn()
	if err := unix.Setns(int(origin.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: the runtime ends it with the goroutine,
		// so no other goroutine runs in the wrong namespace.
		return errors.Join(fnErr, fmt.Errorf("netns: return from %s: %w", name, err))
	}
	runtime.UnlockOSThread()
	return fnErr
}
