package rules

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// aLongTimeAgo is a deadline that has passed: it ends a read at once.
var aLongTimeAgo = time.Unix(1, 0)

// The limits on what a rule file may be. A larger file or more rules is
// refused with a *LimitError: the shipped experiments are a few kB with a
// handful of rules, and every rule is tried, in order, on every packet.
const (
	// MaxFileBytes bounds a rule file's size.
	MaxFileBytes = 1 << 20
	// MaxRules bounds the number of rules in a file.
	MaxRules = 1000
)

// LimitError says that a rule file is over one of the limits (MaxFileBytes,
// MaxRules) or of a kind that is not read (a device, a FIFO without
// LoadOptions.AllowPipe).
type LimitError struct {
	// File is the file's name as given.
	File string
	// Msg says what is wrong and what the limit is.
	Msg string
}

func (e *LimitError) Error() string { return "rules: " + e.File + ": " + e.Msg }

// LoadOptions are the options of Load. The zero value reads regular files
// only.
type LoadOptions struct {
	// AllowPipe also reads a FIFO or a pipe (such as /dev/stdin or a shell's
	// <(...)): read once, to its end, at most MaxFileBytes. Opening a FIFO
	// waits for a writer; the wait, like the read, ends when ctx is done.
	AllowPipe bool
}

// Load reads, parses and validates the rule file at path, which must be a
// regular file (or, with AllowPipe, a FIFO or pipe) of at most
// MaxFileBytes holding at most MaxRules rules. Every wait (opening a FIFO,
// reading) ends when ctx is done, with ctx's error wrapped. Errors are
// *Error values (joined when there are several) that say FILE:LINE:COL, or a
// *LimitError.
func Load(ctx context.Context, path string, opt LoadOptions) (*File, error) {
	data, warn, err := readFile(ctx, path, opt)
	if err != nil {
		return nil, err
	}
	f, err := Parse(path, data)
	if f != nil && warn != "" {
		f.Warnings = append(f.Warnings, warn)
	}
	return f, err
}

// ReadLimited reads r to its end, at most MaxFileBytes, as a rule file
// called name (for standard input). It returns when ctx is done even if r
// blocks (the read then goes on in the background until r returns).
func ReadLimited(ctx context.Context, name string, r io.Reader) ([]byte, error) {
	type result struct {
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(io.LimitReader(r, MaxFileBytes+1))
		ch <- result{b, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			return nil, fmt.Errorf("rules: %s: %w", name, res.err)
		}
		if len(res.b) > MaxFileBytes {
			return nil, &LimitError{File: name, Msg: fmt.Sprintf("more than %d bytes (the limit for a rule file)", MaxFileBytes)}
		}
		return res.b, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("rules: %s: reading stopped: %w", name, context.Cause(ctx))
	}
}

// readFile opens path without blocking, checks what it is and reads it.
// The warning it returns says when others may write the file.
func readFile(ctx context.Context, path string, opt LoadOptions) (data []byte, warning string, err error) {
	if err := ctx.Err(); err != nil {
		return nil, "", fmt.Errorf("rules: %s: %w", path, err)
	}
	// A FIFO is recognised by stat, before any open: even a non-blocking
	// open for reading would be a reader that a writer's open can meet,
	// write to and leave before the real read begins (it then waits for a
	// writer that has come and gone).
	if st, err := os.Stat(path); err == nil && st.Mode()&fs.ModeNamedPipe != 0 && opt.AllowPipe {
		data, err = readPipe(ctx, path)
		return data, "", err
	}
	// O_NONBLOCK: should the path have become a FIFO since the stat, the
	// open must not wait for a writer before its kind is known.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, "", fmt.Errorf("rules: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, "", fmt.Errorf("rules: %w", err)
	}
	mode := st.Mode()
	switch {
	case mode.IsRegular():
		defer f.Close()
		if st.Size() > MaxFileBytes {
			return nil, "", &LimitError{File: path, Msg: fmt.Sprintf("%d bytes, more than the limit of %d for a rule file", st.Size(), MaxFileBytes)}
		}
		if mode.Perm()&0o002 != 0 {
			warning = fmt.Sprintf("%s is writable by every user (mode %04o): anyone on this host can change what the middlebox does; chmod o-w %s", path, mode.Perm(), path)
		}
		data, err = ReadLimited(ctx, path, f) // the file may grow while read
		return data, warning, err
	case mode&fs.ModeNamedPipe != 0 && opt.AllowPipe:
		f.Close()
		data, err = readPipe(ctx, path)
		return data, "", err
	}
	f.Close()
	hint := ""
	if mode&fs.ModeNamedPipe != 0 {
		hint = " (to read a pipe, ask for it: --allow-pipe)"
	}
	return nil, "", &LimitError{File: path, Msg: fmt.Sprintf("not a regular file (%s); a rule file must be one%s", kindOf(mode), hint)}
}

// readPipe opens a FIFO or pipe for reading, waiting for a writer, and
// reads it; both waits end when ctx is done.
func readPipe(ctx context.Context, path string) ([]byte, error) {
	opened := make(chan *os.File, 1)
	openErr := make(chan error, 1)
	go func() {
		f, err := os.Open(path) // waits for a writer
		if err != nil {
			openErr <- err
			return
		}
		opened <- f
	}()
	var f *os.File
	select {
	case f = <-opened:
	case err := <-openErr:
		return nil, fmt.Errorf("rules: %w", err)
	case <-ctx.Done():
		// Be the writer the open waits for, so it returns; then close what
		// it opened.
		if w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
		go func() {
			select {
			case f := <-opened:
				f.Close()
			case <-openErr:
			}
		}()
		return nil, fmt.Errorf("rules: %s: waiting for a writer stopped: %w", path, context.Cause(ctx))
	}
	defer f.Close()
	// A FIFO's reads go through the poller: a deadline ends them.
	stop := context.AfterFunc(ctx, func() { f.SetReadDeadline(aLongTimeAgo) })
	defer stop()
	b, err := ReadLimited(ctx, path, f)
	if err != nil && ctx.Err() != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("rules: %s: reading stopped: %w", path, context.Cause(ctx))
	}
	return b, err
}

func kindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeDir != 0:
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "mode " + m.String()
}
