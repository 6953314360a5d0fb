package main

import (
	"errors"

	"github.com/urfave/cli/v2"
)

// cleanupCommand is a placeholder until the command is built.
func cleanupCommand() *cli.Command {
	return &cli.Command{
		Name:   "cleanup",
		Usage:  "remove what a crashed run left behind",
		Action: func(*cli.Context) error { return errors.New("cleanup: not built yet") },
	}
}
