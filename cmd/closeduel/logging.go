package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/urfave/cli/v2"
)

// loggerKey is where the app's Before keeps the logger in App.Metadata.
const loggerKey = "logger"

// logFlags are the global flags that shape the operational log (standard
// error): text for people, JSON for collectors.
func logFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "log-format", Value: "text", EnvVars: []string{"CLOSEDUEL_LOG_FORMAT"}, Usage: "operational log on standard error: text or json"},
		&cli.StringFlag{Name: "log-level", Value: "info", EnvVars: []string{"CLOSEDUEL_LOG_LEVEL"}, Usage: "least level logged: debug, info, warn or error"},
	}
}

// newLogger returns the slog logger the flags ask for, writing to w.
func newLogger(format, level string, w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// setupLogger is the app's Before: it builds the logger once for every
// subcommand.
func setupLogger(c *cli.Context) error {
	w := c.App.ErrWriter
	if w == nil {
		w = io.Discard
	}
	l, err := newLogger(c.String("log-format"), c.String("log-level"), w)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if c.App.Metadata == nil {
		c.App.Metadata = map[string]any{}
	}
	c.App.Metadata[loggerKey] = l
	return nil
}

// logger returns the app's logger (a discarding one when Before did not
// run, as in tests that call an action directly).
func logger(c *cli.Context) *slog.Logger {
	if c != nil && c.App != nil {
		if l, ok := c.App.Metadata[loggerKey].(*slog.Logger); ok {
			return l
		}
	}
	return slog.New(slog.DiscardHandler)
}
