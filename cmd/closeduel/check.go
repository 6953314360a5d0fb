package main

import (
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
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return &exitError{code: 2, err: errors.New("check: name at least one rule file (closeduel check FILE...)")}
			}
			return checkFiles(c.Args().Slice(), c.Bool("quiet"), c.App.Reader, c.App.Writer, c.App.ErrWriter)
		},
	}
}

// checkFiles checks each file, printing descriptions to out and errors to
// errOut, and returns an exitError with status 1 when any file failed.
func checkFiles(args []string, quiet bool, in io.Reader, out, errOut io.Writer) error {
	bad, shown := 0, 0
	for _, arg := range args {
		f, err := loadRuleFile(arg, in)
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
		if quiet {
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
func loadRuleFile(arg string, in io.Reader) (*rules.File, error) {
	if arg == "-" {
		data, err := io.ReadAll(in)
		if err != nil {
			return nil, fmt.Errorf("check: standard input: %w", err)
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
	return rules.LoadFile(arg)
}
