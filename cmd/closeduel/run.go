package main

import (
	"errors"

	"github.com/urfave/cli/v2"
)

// runCommand is a placeholder until the command is built.
func runCommand() *cli.Command {
	return &cli.Command{
		Name:   "run",
		Usage:  "sit inline on a bridge and give every packet a verdict",
		Action: func(*cli.Context) error { return errors.New("run: not built yet") },
	}
}
