package main

import (
	"context"
	"errors"
	"strings"

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
		Description: `Every flag of run and ctl can also be set by an environment variable
(CLOSEDUEL_ and the flag's name in capitals, as each flag's help says), which
is how the systemd unit passes settings (packaging/closeduel.env).` + examples(
			"closeduel lab",
			"closeduel run --bridge br0 --host 192.168.100.1 --host 192.168.100.99 --metrics 127.0.0.1:9597",
			"closeduel --log-format json --log-level debug run --bridge br0",
		),
		Flags:                logFlags(),
		Before:               setupLogger,
		EnableBashCompletion: true,
		Commands: []*cli.Command{
			runCommand(),
			cleanupCommand(),
			checkCommand(),
			rulesCommand(),
			labCommand(),
			analyzeCommand(),
			benchCommand(),
			ctlCommand(),
			completionCommand(),
			docsCommand(),
		},
		HideHelpCommand: true,
	}
}

// run runs the application with argv; main exits on its error.
func run(ctx context.Context, argv []string) error {
	return newApp().RunContext(ctx, argv)
}

// examples formats the Examples section every command's help ends with.
func examples(lines ...string) string {
	var b strings.Builder
	b.WriteString("\n\nExamples:\n")
	for _, l := range lines {
		b.WriteString("  " + l + "\n")
	}
	return strings.TrimSuffix(b.String(), "\n")
}
