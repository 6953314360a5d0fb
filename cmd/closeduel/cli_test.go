package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

var update = flag.Bool("update", false, "rewrite docs/cli.md")

// visibleCommands returns every command users see, with its full name.
func visibleCommands(path string, cs []*cli.Command) map[string]*cli.Command {
	out := map[string]*cli.Command{}
	for _, c := range cs {
		if c.Hidden {
			continue
		}
		out[path+c.Name] = c
		for k, v := range visibleCommands(path+c.Name+" ", c.Subcommands) {
			out[k] = v
		}
	}
	return out
}

func TestEveryCommandHelpHasAnExample(t *testing.T) {
	for name, c := range visibleCommands("closeduel ", newApp().Commands) {
		t.Run(name, func(t *testing.T) {
			i := strings.Index(c.Description, "\nExamples:\n  closeduel ")
			j := strings.Index(c.Description, "\nExamples:\n  ")
			if i < 0 && j < 0 {
				t.Fatalf("%s --help has no Examples section:\n%s", name, c.Description)
			}
			var out bytes.Buffer
			app := newApp()
			app.Writer = &out
			args := append(strings.Fields(name), "--help")
			if err := app.Run(args); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), "Examples:") {
				t.Fatalf("%s --help does not show the examples:\n%s", name, out.String())
			}
		})
	}
}

// TestReferenceIsCurrent fails when docs/cli.md differs from what the
// command definitions generate (go generate ./cmd/closeduel, or -update).
func TestReferenceIsCurrent(t *testing.T) {
	var b bytes.Buffer
	if err := writeReference(&b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "docs", "cli.md")
	if *update {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	have, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go generate ./cmd/closeduel)", err)
	}
	if !bytes.Equal(have, b.Bytes()) {
		t.Fatalf("docs/cli.md is out of date with the command definitions: run go generate ./cmd/closeduel")
	}
	for _, want := range []string{"## closeduel run", "`CLOSEDUEL_RULES`", "Examples:", "--log-format"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("reference lacks %q", want)
		}
	}
}

func TestLogFormatAndLevel(t *testing.T) {
	var b bytes.Buffer
	l, err := newLogger("json", "warn", &b)
	if err != nil {
		t.Fatal(err)
	}
	l.Info("not shown")
	l.Warn("shown", "queue", 7)
	var rec map[string]any
	if err := json.Unmarshal(b.Bytes(), &rec); err != nil {
		t.Fatalf("json log line %q: %v", b.String(), err)
	}
	if rec["level"] != "WARN" || rec["msg"] != "shown" || rec["queue"] != float64(7) {
		t.Fatalf("json record %v", rec)
	}
	b.Reset()
	l, _ = newLogger("text", "debug", &b)
	l.Debug("hello", "k", "v")
	if !strings.Contains(b.String(), "level=DEBUG msg=hello k=v") {
		t.Fatalf("text line %q", b.String())
	}
	for _, bad := range [][2]string{{"xml", "info"}, {"text", "loud"}} {
		if _, err := newLogger(bad[0], bad[1], &b); err == nil {
			t.Errorf("newLogger(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

func TestEnvironmentSetsFlags(t *testing.T) {
	t.Setenv("CLOSEDUEL_LOG_FORMAT", "xml")
	app := newApp()
	app.Writer, app.ErrWriter = &bytes.Buffer{}, &bytes.Buffer{}
	err := app.Run([]string{"closeduel", "rules"})
	if err == nil || !strings.Contains(err.Error(), `--log-format "xml"`) || exitCode(err) != 2 {
		t.Fatalf("CLOSEDUEL_LOG_FORMAT=xml: err %v (exit %d), want a --log-format error, exit 2", err, exitCode(err))
	}
	t.Setenv("CLOSEDUEL_LOG_FORMAT", "json")
	t.Setenv("CLOSEDUEL_QUEUE", "70000")
	app = newApp()
	app.Writer, app.ErrWriter = &bytes.Buffer{}, &bytes.Buffer{}
	err = app.Run([]string{"closeduel", "run", "--hook", "none"})
	if err == nil || !strings.Contains(err.Error(), "--queue 70000") {
		t.Fatalf("CLOSEDUEL_QUEUE=70000: err %v, want the queue range error", err)
	}
}

// TestNoPrintInLibraries: library packages report through errors, writers
// they are given or slog, never by printing to the process's output.
func TestNoPrintInLibraries(t *testing.T) {
	bad := regexp.MustCompile(`\bfmt\.Print|\blog\.(Print|Fatal|Panic)|\bprintln\(`)
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() && (rel == "cmd" || strings.HasPrefix(d.Name(), ".") && rel != ".") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(data), "\n") {
			if bad.MatchString(line) && !strings.HasPrefix(strings.TrimSpace(line), "//") {
				t.Errorf("%s:%d prints: %s", rel, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
