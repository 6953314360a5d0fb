package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/closeduel/closeduel/rules"
)

// rulesCommand is `closeduel rules [NAME]`: list the shipped experiments,
// or print one of them.
func rulesCommand() *cli.Command {
	return &cli.Command{
		Name:      "rules",
		Usage:     "list the shipped experiments, or print one",
		ArgsUsage: "[NAME]",
		Description: `Without an argument, lists the experiments shipped in rules/library with their
about: line. With a NAME, prints that experiment's rule file, to run it as it is
(closeduel run --rules NAME) or to copy and change it.` + examples(
			"closeduel rules",
			"closeduel rules lost-final-ack > my-experiment.yaml",
		),
		Action: func(c *cli.Context) error {
			switch c.NArg() {
			case 0:
				return listLibrary(c.App.Writer)
			case 1:
				return printLibrary(c.App.Writer, c.Args().First())
			}
			return &exitError{code: 2, err: errors.New("rules: at most one experiment name")}
		},
	}
}

func listLibrary(out io.Writer) error {
	tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	for _, name := range rules.LibraryNames() {
		f, err := rules.LoadLibrary(name)
		if err != nil {
			return fmt.Errorf("rules: shipped experiment %s is broken: %w", name, err)
		}
		fmt.Fprintf(tw, "%s\t%s\n", f.Experiment, f.About)
	}
	return tw.Flush()
}

func printLibrary(out io.Writer, name string) error {
	if _, err := rules.LoadLibrary(name); err != nil {
		return err
	}
	data, err := fs.ReadFile(rules.Library(), name+".yaml")
	if err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	_, err = out.Write(data)
	return err
}
