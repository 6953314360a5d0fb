package main

import (
	"errors"

	"github.com/urfave/cli/v2"
)

// rulesCommand is a placeholder until the command is built.
func rulesCommand() *cli.Command {
	return &cli.Command{
		Name:   "rules",
		Usage:  "list the shipped experiments",
		Action: func(*cli.Context) error { return errors.New("rules: not built yet") },
	}
}
