package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/closeduel/closeduel/control"
)

// ctlCommand is `closeduel ctl`: talks to a running `closeduel run`.
func ctlCommand() *cli.Command {
	return &cli.Command{
		Name:      "ctl",
		Usage:     "switch rules and mitigations of a running closeduel run on or off, reload its rules, show its status",
		ArgsUsage: "enable RULE | disable RULE | mitigation NAME on|off | reload | rules | status",
		Description: `Sends one command to the control socket of a running "closeduel run" (the
systemd unit's too: both default to /run/closeduel/queue-N.sock) and prints the
answer. Switches are recorded in the run's verdict log.` + examples(
			"closeduel ctl status",
			"closeduel ctl disable drop-final-ack",
			"closeduel ctl mitigation timewait-guard on",
			"closeduel ctl --queue 3 reload",
			"closeduel ctl --socket /run/closeduel/queue-7.sock rules",
		),
		Flags: []cli.Flag{
			&cli.UintFlag{Name: "queue", Value: 7, EnvVars: []string{"CLOSEDUEL_QUEUE"}, Usage: "queue of the run to talk to"},
			&cli.StringFlag{Name: "socket", EnvVars: []string{"CLOSEDUEL_CONTROL"}, Usage: "control socket (default /run/closeduel/queue-N.sock)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return fmt.Errorf("ctl: say what to do: %s", c.Command.ArgsUsage)
			}
			path := c.String("socket")
			if path == "" {
				path = control.DefaultPath(uint16(c.Uint("queue")))
			}
			out, err := control.Send(c.Context, path, c.Args().Slice())
			if err != nil {
				return fmt.Errorf("ctl: %w", err)
			}
			fmt.Fprint(c.App.Writer, out)
			return nil
		},
	}
}
