package main

import (
	"errors"

	"github.com/urfave/cli/v2"
)

// analyzeCommand is a placeholder until the command is built.
func analyzeCommand() *cli.Command {
	return &cli.Command{
		Name:   "analyze",
		Usage:  "analyse captures and verdict logs",
		Action: func(*cli.Context) error { return errors.New("analyze: not built yet") },
	}
}
