package main

import (
	"context"
	"errors"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// exitError carries a specific exit status out of a subcommand.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

// newApp builds the command-line application.
func newApp() *cli.App {
	return &cli.App{
		Name:    "closeduel",
		Usage:   "an inline NFQUEUE middlebox and lab for TCP close duels between Linux and embedded stacks",
		Version: version,
		Commands: []*cli.Command{
			runCommand(),
			cleanupCommand(),
			checkCommand(),
			rulesCommand(),
			labCommand(),
			analyzeCommand(),
			benchCommand(),
			ctlCommand(),
		},
		HideHelpCommand: true,
	}
}

// run runs the application with argv; main exits on its error.
func run(ctx context.Context, argv []string) error {
	return newApp().RunContext(ctx, argv)
}
