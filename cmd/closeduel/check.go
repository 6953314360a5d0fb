package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/closeduel/closeduel/rules"
)

// checkCommand is `closeduel check FILE...`: validate rule files and say in
// plain words what each rule does.
func checkCommand() *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "validate rule files and say what each rule does",
		ArgsUsage: "FILE...",
		Description: `Parses and validates each rule file (a path, "-" for standard input, or the
name of a shipped experiment as "closeduel rules" lists it), then says in plain
words what the experiment watches and what each rule does. Errors go to standard
error as FILE:LINE:COLUMN: what was found and what was expected. The exit status
is 1 when any file has an error.` + examples(
			"closeduel check rules.yaml",
			"closeduel check -q lost-final-ack",
			"closeduel rules lost-final-ack | closeduel check -",
		),
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only errors"},
			&cli.BoolFlag{Name: "allow-pipe", Usage: "read a FIFO or pipe too (a rule file is a regular file otherwise)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return &exitError{code: 2, err: errors.New("check: name at least one rule file (closeduel check FILE...)")}
			}
			return checkFiles(c.Context, c.Args().Slice(), checkOptions{quiet: c.Bool("quiet"), pipe: c.Bool("allow-pipe")}, c.App.Reader, c.App.Writer, c.App.ErrWriter)
		},
	}
}

// checkOptions are check's flags.
type checkOptions struct {
	quiet bool // print only errors
	pipe  bool // FIFOs and pipes may be read
}

// checkFiles checks each file, printing descriptions to out and errors to
// errOut, and returns an exitError with status 1 when any file failed. It
// stops when ctx is done.
func checkFiles(ctx context.Context, args []string, o checkOptions, in io.Reader, out, errOut io.Writer) error {
	bad, shown := 0, 0
	for _, arg := range args {
		f, err := loadRuleFile(ctx, arg, in, o.pipe)
		if ctx.Err() != nil {
			return fmt.Errorf("check: interrupted: %w", err)
		}
		if err != nil {
			bad++
			if errs := rules.Errors(err); len(errs) > 0 {
				for _, e := range errs {
					fmt.Fprintln(errOut, e)
				}
			} else {
				fmt.Fprintln(errOut, err)
			}
			continue
		}
		for _, w := range f.Warnings {
			fmt.Fprintln(errOut, "warning:", w)
		}
		if o.quiet {
			continue
		}
		if shown > 0 {
			fmt.Fprintln(out)
		}
		shown++
		fmt.Fprintf(out, "%s: experiment %s: %s\n", f.Path, f.Experiment, f.About)
		for _, line := range f.Describe() {
			fmt.Fprintln(out, "  "+line)
		}
	}
	if bad > 0 {
		return &exitError{code: 1, err: fmt.Errorf("check: %d of %d rule files have errors", bad, len(args))}
	}
	return nil
}

// loadRuleFile loads a path, "-" (standard input), or a shipped
// experiment's name when no such file exists.
func loadRuleFile(ctx context.Context, arg string, in io.Reader, pipe bool) (*rules.File, error) {
	if arg == "-" {
		data, err := rules.ReadLimited(ctx, "stdin", in)
		if err != nil {
			return nil, err
		}
		return rules.Parse("stdin", data)
	}
	if _, err := os.Stat(arg); err != nil && !strings.ContainsAny(arg, `/\`) && !strings.HasSuffix(arg, ".yml") {
		for _, name := range rules.LibraryNames() {
			if name == strings.TrimSuffix(arg, ".yaml") {
				return rules.LoadLibrary(name)
			}
		}
	}
	return rules.Load(ctx, arg, rules.LoadOptions{AllowPipe: pipe})
}
