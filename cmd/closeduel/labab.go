package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/closeduel/closeduel/analysis"
	"github.com/closeduel/closeduel/mitigate"
)

// endpointFix is a fix that lives in the hosts, as lab flags.
type endpointFix struct {
	about string
	// args are the lab flags that apply it (after the workload's, so
	// they win).
	args []string
}

// endpointFixes are the host-side fixes `lab --ab` knows, each applied to
// the TIME-WAIT reuse workload unless other flags are given.
var endpointFixes = map[string]endpointFix{
	"wide-ports":      {"the client picks from Linux's default range (32768-60999) instead of two ports", []string{"--ports", "32768-60999"}},
	"random-ports":    {"the client picks each local port at random in a wide range", []string{"--ports", "32768-60999", "--random-ports"}},
	"rfc1337":         {"client net.ipv4.tcp_rfc1337=1", []string{"--rfc1337", "1"}},
	"tw-reuse":        {"client net.ipv4.tcp_tw_reuse=1", []string{"--tw-reuse", "1"}},
	"timestamps":      {"client net.ipv4.tcp_timestamps=0 (Linux's default is 1; lwIP sends none)", []string{"--timestamps", "0"}},
	"linger0":         {"the client closes with SO_LINGER 0 (RST)", []string{"--linger0"}},
	"close-second":    {"the device waits for the client's FIN before closing (and the client closes first)", []string{"--close", "wait", "--client-close", "head"}},
	"short-time-wait": {"the device keeps TIME_WAIT for 200 ms instead of 120 s", []string{"--time-wait", "200ms"}},
	"large-pool":      {"the device's pcb pool has no limit", []string{"--pool", "0"}},
}

// abTargets returns the experiment and workload flags that show what
// fix name targets, and the flags that apply it.
func abTargets(name string) (rules string, workload, fix []string, err error) {
	if n, ok := mitigate.ParseName(name); ok {
		info := n.Info()
		return info.Experiment, info.LabArgs, []string{"--mitigation", n.String()}, nil
	}
	if f, ok := endpointFixes[name]; ok {
		info := mitigate.TimewaitGuard.Info()
		return info.Experiment, info.LabArgs, f.args, nil
	}
	known := mitigate.Names()
	for k := range endpointFixes {
		known = append(known, k)
	}
	sort.Strings(known)
	return "", nil, nil, fmt.Errorf("lab: --ab %q: no mitigation or endpoint fix of that name; known: %s", name, strings.Join(known, ", "))
}

// abOwnFlags are the lab flags that do not change the workload: with only
// these besides --ab, the runs use the targeted experiment's workload.
var abOwnFlags = []string{"ab", "runs", "name", "device", "seed", "lab-summary"}

// labAB is `closeduel lab --ab NAME`: the same workload twice, without and
// with NAME, each as its own `closeduel lab` process, then the comparison.
func labAB(c *cli.Context) error {
	name := c.String("ab")
	rulesName, workload, fix, err := abTargets(name)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("lab: the bench needs root (network namespaces, taps, NFQUEUE): run it with sudo")
	}
	own := true
	for _, f := range c.LocalFlagNames() {
		if !slices.Contains(abOwnFlags, f) {
			own = false
		}
	}
	base := labArgsWithout(os.Args, "ab")
	if own {
		base = append(base, "--rules", rulesName)
		base = append(base, workload...)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	out := c.App.Writer
	if out == nil {
		out = os.Stdout
	}
	runs := c.String("runs")
	var dirs [2]string
	for i, side := range []string{"without", "with"} {
		exp := "ab-" + name + "-" + side
		args := append(append([]string{"lab"}, base...), "--experiment", exp)
		if i == 1 {
			args = append(args, fix...)
		}
		fmt.Fprintf(out, "== %s %s: closeduel %s\n", side, name, strings.Join(args, " "))
		cmd := exec.CommandContext(c.Context, exe, args...)
		cmd.Stdout, cmd.Stderr = out, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("lab: --ab %s: the run %s: %w", name, side, err)
		}
		if dirs[i], err = newestRun(runs, exp); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "\n== %s: without (A) and with (B)\n", name)
	var reps [2]*analysis.Report
	for i, d := range dirs {
		if reps[i], err = analysis.AnalyzeRun(c.Context, d); err != nil {
			return err
		}
	}
	cmp := analysis.Compare(reps[0], reps[1])
	if err := writeFile(filepath.Join(dirs[1], "compare.json"), func(w io.Writer) error { return writeJSON(w, cmp) }); err != nil {
		return err
	}
	return analysis.WriteCompareText(out, cmp)
}

// labArgsWithout returns the arguments after "lab" in argv without the
// flag name and its value.
func labArgsWithout(argv []string, name string) []string {
	i := slices.Index(argv, "lab")
	if i < 0 {
		return nil
	}
	var out []string
	rest := argv[i+1:]
	for j := 0; j < len(rest); j++ {
		a := rest[j]
		switch {
		case a == "--"+name || a == "-"+name:
			j++ // its value
			continue
		case strings.HasPrefix(a, "--"+name+"=") || strings.HasPrefix(a, "-"+name+"="):
			continue
		}
		out = append(out, a)
	}
	return out
}

// newestRun returns the newest run directory of experiment exp in runs.
func newestRun(runs, exp string) (string, error) {
	m, err := filepath.Glob(filepath.Join(runs, "*-"+exp))
	if err != nil || len(m) == 0 {
		return "", fmt.Errorf("lab: no run directory of %s in %s", exp, runs)
	}
	sort.Strings(m) // names start with the UTC time
	return m[len(m)-1], nil
}
