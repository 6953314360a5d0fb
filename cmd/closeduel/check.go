package main

import (
	"errors"

	"github.com/urfave/cli/v2"
)

// checkCommand is a placeholder until the command is built.
func checkCommand() *cli.Command {
	return &cli.Command{
		Name:   "check",
		Usage:  "validate rule files and say what each rule does",
		Action: func(*cli.Context) error { return errors.New("check: not built yet") },
	}
}
