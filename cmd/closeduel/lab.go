package main

import (
	"errors"

	"github.com/urfave/cli/v2"
)

// labCommand is a placeholder until the command is built.
func labCommand() *cli.Command {
	return &cli.Command{
		Name:   "lab",
		Usage:  "run an experiment on the built-in lab bench",
		Action: func(*cli.Context) error { return errors.New("lab: not built yet") },
	}
}
