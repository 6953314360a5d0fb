package main

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/closeduel/closeduel/lab"
	"github.com/closeduel/closeduel/mitigate"
	"github.com/closeduel/closeduel/rules"
)

// defaultMatrixParallel is how many benches the matrix runs at once (0:
// every cell). The workloads are light (a few requests each, then
// watching) and start together after every bench is set up, so every cell
// of the library runs at once on a 2-CPU machine; lab/README.md has the
// measurement (the schedule errors and the in-order check of each cell
// are in the table to show it).
const defaultMatrixParallel = 0

// MatrixSchema names the layout of matrix.json (documented in
// lab/README.md, "The matrix"). It changes when a field changes meaning
// or goes away; new fields may appear within a version.
const MatrixSchema = "closeduel.matrix/v1"

// matrixCell is one run of the matrix: an experiment against a device,
// with extra settings on top of the rule file's (a mitigation or an
// endpoint fix: flag name → value, "sysctl KEY" for a sysctl).
type matrixCell struct {
	Experiment string
	Device     string
	// Variant names the extra settings ("" for none); it becomes part of
	// the run directory's name.
	Variant string
	Extra   map[string]string
	// Mitigation, when set, is switched on for the run.
	Mitigation string

	cfg    lab.Config
	status *statusLine
	res    *lab.Result
	err    error
}

// MatrixFile is matrix.json.
type MatrixFile struct {
	Schema   string       `json:"schema"`
	Started  time.Time    `json:"started"`
	Finished time.Time    `json:"finished"`
	Dir      string       `json:"dir"`
	Parallel int          `json:"parallel"`
	Command  []string     `json:"command"`
	Version  string       `json:"version"`
	Cells    []MatrixCell `json:"cells"`
}

// MatrixCell is one run's row of matrix.json.
type MatrixCell struct {
	Experiment string `json:"experiment"`
	Device     string `json:"device"`
	Variant    string `json:"variant,omitempty"`
	// RunDir is the run directory, relative to the matrix directory.
	RunDir         string `json:"run_dir"`
	RequestsOK     int    `json:"requests_ok"`
	RequestsFailed int    `json:"requests_failed"`
	Duels          int    `json:"duels"`
	// DuelsAfterWorkload went on after the client stopped;
	// DuelsOngoingAfterStop were still going at the end of the quiet
	// period.
	DuelsAfterWorkload    int     `json:"duels_after_workload"`
	DuelsOngoingAfterStop int     `json:"duels_ongoing_after_stop"`
	LongestDuelS          float64 `json:"longest_duel_s"`
	DuelSegments          int     `json:"duel_segments"`
	DuelSeconds           float64 `json:"duel_seconds"`
	SegmentsAfterStop     int     `json:"segments_after_stop"`
	// LastAfterStopS is how long after the client stopped the last
	// segment came (0 without any).
	LastAfterStopS float64 `json:"last_after_stop_s"`
	Segments       int     `json:"segments"`
	RSTs           int     `json:"rsts"`
	// MaxStartError and MaxGapError are the workload's schedule errors;
	// OutOfOrder the segments the bridge saw out of their sender's order.
	MaxStartError string `json:"max_start_error"`
	MaxGapError   string `json:"max_gap_error"`
	// WireGapError is the schedule's error as the device got it (the
	// client's SYNs as the bench delivered them); "" when not known.
	WireGapError string `json:"wire_gap_error"`
	OutOfOrder   int    `json:"out_of_order"`
	// ExpectationMet is null when the experiment expects nothing of this
	// device; Expect lists each figure checked.
	ExpectationMet *bool              `json:"expectation_met"`
	Expect         []lab.ExpectResult `json:"expect,omitempty"`
	WallS          float64            `json:"wall_s"`
	Error          string             `json:"error,omitempty"`
}

func matrixAction(c *cli.Context) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("lab: the bench needs root (network namespaces, taps, NFQUEUE): run it with sudo")
	}
	exps := c.StringSlice("experiments")
	if len(exps) == 0 {
		exps = rules.LibraryNames()
	}
	devs := c.StringSlice("devices")
	if len(devs) == 0 {
		devs = rules.ExpectDevices
	}
	var cells []*matrixCell
	for _, e := range exps {
		for _, d := range devs {
			cells = append(cells, &matrixCell{Experiment: e, Device: d})
		}
	}

	out := c.App.Writer
	if out == nil {
		out = os.Stdout
	}
	var progress io.Writer = os.Stderr
	if c.App.ErrWriter != nil {
		progress = c.App.ErrWriter
	}
	m := &matrix{parallel: c.Int("parallel"), runs: c.String("runs"), out: out, progress: progress,
		live: progress == io.Writer(os.Stderr) && isTerminal(os.Stderr), seedSet: c.IsSet("seed"), seed: c.Int64("seed")}
	_, err := m.run(c, cells)
	if err != nil || !c.Bool("fixes") {
		return err
	}
	// The fixes: a second matrix of every cell that dueled, once per fix.
	fixed := fixCells(cells)
	if len(fixed) == 0 {
		fmt.Fprintln(out, "fixes: no experiment dueled, nothing to fix")
		return nil
	}
	fmt.Fprintf(out, "\nfixes: each experiment that dueled, with each middlebox mitigation (and the TIME_WAIT reuse experiment with each endpoint fix)\n")
	m2 := *m // run gives it its own directory
	_, err = m2.run(c, fixed)
	return err
}

// matrix runs cells, a bounded number at once.
type matrix struct {
	parallel       int
	runs           string
	out, progress  io.Writer
	live           bool
	seedSet        bool
	seed           int64
	dir            string
	started, ended time.Time
}

// run runs every cell and writes the table, matrix.json and matrix.html.
func (m *matrix) run(c *cli.Context, cells []*matrixCell) (*MatrixFile, error) {
	ctx := c.Context
	m.started = time.Now().UTC()
	m.dir = filepath.Join(m.runs, m.started.Format("20060102T150405Z")+"-matrix")
	if err := os.MkdirAll(m.dir, 0o755); err != nil {
		return nil, fmt.Errorf("lab: matrix: %w", err)
	}
	// Build the device program once, before the benches race for it.
	if _, err := lab.BuildDevice(ctx, ""); err != nil {
		return nil, err
	}
	if _, err := lab.SweepStale(); err != nil {
		return nil, err
	}
	for i, cell := range cells {
		if err := m.prepare(c, i, cell); err != nil {
			return nil, &exitError{code: 2, err: err}
		}
	}
	// Longest first; with fewer benches at once than cells, in waves.
	order := append([]*matrixCell(nil), cells...)
	sort.SliceStable(order, func(i, j int) bool { return planned(order[i]) > planned(order[j]) })
	par := m.parallel
	if par <= 0 || par > len(cells) {
		par = len(cells)
	}
	m.parallel = par
	// Each bench's engine keeps its P while it blocks in the receive
	// (nfq's RawSyscall, for the single-engine case's context switches),
	// so par engines in this one process need par Ps besides the ones the
	// rest of the lab runs on; with the default 2 they held each other's
	// segments back by up to 300 ms (measured here: the schedule's error
	// on the wire).
	if want := par + runtime.NumCPU(); runtime.GOMAXPROCS(0) < want {
		runtime.GOMAXPROCS(want)
	}
	var waves [][]*matrixCell
	for i := 0; i < len(order); i += par {
		waves = append(waves, order[i:min(i+par, len(order))])
	}
	var total time.Duration
	for _, w := range waves {
		alignQuiet(w)
		total += planned(w[0])
	}
	fmt.Fprintf(m.progress, "matrix: %d runs, %d at once (%d waves), about %s; %s\n",
		len(cells), par, len(waves), total.Round(time.Second), m.dir)

	stopDraw := m.draw(cells)
	for _, wave := range waves {
		if ctx.Err() != nil {
			break
		}
		m.runWave(ctx, wave)
	}
	stopDraw()
	m.ended = time.Now().UTC()

	mf := m.file(c, cells)
	var errs []error
	if err := writeMatrixTable(m.out, mf); err != nil {
		errs = append(errs, err)
	}
	if err := writeFile(filepath.Join(m.dir, "matrix.json"), func(w io.Writer) error { return writeJSON(w, mf) }); err != nil {
		errs = append(errs, err)
	}
	if err := writeFile(filepath.Join(m.dir, "matrix.html"), func(w io.Writer) error { return writeMatrixHTML(w, mf, cells) }); err != nil {
		errs = append(errs, err)
	}
	fmt.Fprintf(m.out, "matrix directory: %s (matrix.json, matrix.html, one run directory per cell)\n", m.dir)
	for _, cell := range cells {
		if cell.err != nil {
			errs = append(errs, fmt.Errorf("%s on %s: %w", cell.Experiment, cell.Device, cell.err))
		}
	}
	if ctx.Err() != nil {
		errs = append(errs, fmt.Errorf("lab: matrix interrupted: %w", ctx.Err()))
	}
	return mf, errors.Join(errs...)
}

// runWave runs a wave of cells at once. Every bench is set up first; the
// workloads then start together (lab.Config.Gate), so no bench's set-up
// or teardown competes with another's workload, and since alignQuiet made
// the quiet periods end together, the teardowns come last, together.
func (m *matrix) runWave(ctx context.Context, wave []*matrixCell) {
	g := &gate{left: len(wave), open: make(chan struct{})}
	var wg sync.WaitGroup
	for _, cell := range wave {
		var once sync.Once
		arrive := func() { once.Do(g.arrive) }
		cell.cfg.Gate = func(ctx context.Context) error {
			cell.status.set("ready, waiting for the wave's other benches")
			arrive()
			select {
			case <-g.open:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cell.status.set("setting up")
			started := time.Now()
			cell.res, cell.err = lab.Run(ctx, cell.cfg)
			arrive() // a bench that failed before the gate must not hold the others
			cell.status.finish(time.Since(started), cell.res, cell.err)
		}()
	}
	wg.Wait()
}

// gate opens once every bench of a wave has arrived.
type gate struct {
	mu   sync.Mutex
	left int
	open chan struct{}
}

func (g *gate) arrive() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.left--; g.left == 0 {
		close(g.open)
	}
}

// alignQuiet lengthens the quiet periods of a wave so that they all end
// together, at the end of the wave's longest schedule and quiet: the
// teardowns then come after every workload and every quiet period.
func alignQuiet(wave []*matrixCell) {
	var end time.Duration
	for _, c := range wave {
		end = max(end, c.cfg.Schedule.Duration()+max(c.cfg.Quiet, 0))
	}
	for _, c := range wave {
		q := end - c.cfg.Schedule.Duration()
		if q == max(c.cfg.Quiet, 0) {
			continue
		}
		c.cfg.Quiet = q
		for i := range c.cfg.Settings {
			if c.cfg.Settings[i].Key == "quiet" {
				c.cfg.Settings[i].Value = q.String()
				c.cfg.Settings[i].Source += "; matrix: lengthened to end with the wave's longest run"
			}
		}
	}
}

// prepare builds one cell's lab.Config: the rule file's lab: section,
// the flags given, the device, then the cell's extra settings.
func (m *matrix) prepare(c *cli.Context, i int, cell *matrixCell) error {
	f, err := loadRules(c.Context, cell.Experiment, false)
	if err != nil {
		return err
	}
	vals := mergeLabSettings(c, f)
	vals.set("device", cell.Device, "matrix")
	extras := make([]string, 0, len(cell.Extra))
	for k := range cell.Extra {
		extras = append(extras, k)
	}
	sort.Strings(extras)
	for _, k := range extras {
		vals.set(k, cell.Extra[k], "matrix variant "+cell.Variant)
	}
	cfg, err := vals.config()
	if err != nil {
		return fmt.Errorf("%s: %w", cell.Experiment, err)
	}
	name := cell.Experiment + "-" + cell.Device
	if cell.Variant != "" {
		name += "-" + cell.Variant
	}
	cfg.Experiment, cfg.RunsDir, cfg.Command, cfg.Version = name, m.dir, os.Args, version
	cfg.Seed = m.seed
	// Namespace names: cd-l<pid>x<i>-..., so a matrix killed outright is
	// swept by the next lab like any other run of a dead process.
	cfg.Name = fmt.Sprintf("l%dx%d", os.Getpid(), i)
	cfg.Expect = labExpectations(f, cfg.Device)
	cfg.Rules = cell.Experiment
	if err := labMitigations(c, f); err != nil {
		return err
	}
	if cell.Mitigation != "" {
		n, _ := mitigate.ParseName(cell.Mitigation)
		f.Mitigations = f.Mitigations.With(n, true)
	}
	if cell.Variant != "" {
		// The expectations are about the experiment without the fix.
		cfg.Expect = nil
	}
	labInline(&cfg, f, m.seedSet)
	cfg.Report = analysisReport(context.WithoutCancel(c.Context))
	cell.status = &statusLine{label: fmt.Sprintf("%-22s %-5s", cell.Experiment, cell.Device), state: "waiting"}
	cfg.Progress, cfg.Live = cell.status, true
	cell.cfg = cfg
	return nil
}

// fixCells returns, for each cell that dueled, one cell per middlebox
// mitigation and, for the experiment the endpoint fixes target
// (timewait-guard's), one per endpoint fix.
func fixCells(cells []*matrixCell) []*matrixCell {
	var out []*matrixCell
	reuse := mitigate.TimewaitGuard.Info().Experiment
	for _, cell := range cells {
		if cell.res == nil || cell.res.Analysis == nil || cell.res.Analysis.Totals.Duels == 0 {
			continue
		}
		for _, n := range mitigate.All() {
			out = append(out, &matrixCell{Experiment: cell.Experiment, Device: cell.Device, Variant: n.String(), Mitigation: n.String()})
		}
		if cell.Experiment != reuse {
			continue
		}
		names := make([]string, 0, len(endpointFixes))
		for name := range endpointFixes {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			out = append(out, &matrixCell{Experiment: cell.Experiment, Device: cell.Device, Variant: name, Extra: flagMap(endpointFixes[name].args)})
		}
	}
	return out
}

// flagMap turns lab flags ("--close", "wait", "--linger0") into the
// matrix's settings (close: wait, linger0: true).
func flagMap(args []string) map[string]string {
	m := map[string]string{}
	for i := 0; i < len(args); i++ {
		name, value := strings.TrimPrefix(args[i], "--"), "true"
		if i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
			value = args[i+1]
			i++
		}
		switch key, ok := sysctlFlags[name]; {
		case ok:
			name = "sysctl " + key
		case name == "sysctl":
			k, v, _ := strings.Cut(value, "=")
			name, value = "sysctl "+k, v
		}
		m[name] = value
	}
	return m
}

// planned is how long a cell's bench runs: schedule and quiet, plus set-up.
func planned(c *matrixCell) time.Duration {
	return c.cfg.Schedule.Duration() + max(c.cfg.Quiet, 0) + 3*time.Second
}

// statusLine keeps the last progress line of one run: the lab's progress
// writer redraws it ("\r\033[K..."), the matrix shows it.
type statusLine struct {
	label string
	mu    sync.Mutex
	state string
}

// Write implements io.Writer for the lab's progress output.
func (s *statusLine) Write(p []byte) (int, error) {
	line := strings.TrimSpace(strings.ReplaceAll(string(p), "\033[K", ""))
	if i := strings.LastIndex(line, "\r"); i >= 0 {
		line = line[i+1:]
	}
	if line != "" {
		s.set(line)
	}
	return len(p), nil
}

func (s *statusLine) set(state string) {
	s.mu.Lock()
	s.state = state
	s.mu.Unlock()
}

func (s *statusLine) get() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

func (s *statusLine) finish(d time.Duration, res *lab.Result, err error) {
	st := fmt.Sprintf("done in %.0fs", d.Seconds())
	if res != nil && res.Analysis != nil {
		st += fmt.Sprintf(": duels %d, after the client stopped %d", res.Analysis.Totals.Duels, res.Analysis.Totals.DuelsAfterWorkload)
	}
	if res != nil {
		if l := res.ExpectationLine(); l != "" {
			st += "; expectation " + l
		}
	}
	if err != nil {
		st += "; error: " + err.Error()
	}
	s.set(st)
}

// draw shows every run's status: redrawn in place on a terminal, else one
// line per run as it ends. It returns a function that stops it.
func (m *matrix) draw(cells []*matrixCell) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		lines := 0
		reported := map[*matrixCell]bool{}
		render := func(final bool) {
			if !m.live {
				for _, c := range cells {
					if st := c.status.get(); strings.HasPrefix(st, "done") && !reported[c] {
						reported[c] = true
						fmt.Fprintf(m.progress, "%s  %s\n", c.status.label, st)
					}
				}
				return
			}
			var b strings.Builder
			if lines > 0 {
				fmt.Fprintf(&b, "\033[%dA", lines)
			}
			width := terminalWidth()
			for _, c := range cells {
				line := c.status.label + "  " + c.status.get()
				if len(line) > width-1 {
					line = line[:width-1]
				}
				fmt.Fprintf(&b, "\r\033[K%s\n", line)
			}
			fmt.Fprintf(&b, "\r\033[K%s elapsed\n", time.Since(m.started).Round(time.Second))
			lines = len(cells) + 1
			io.WriteString(m.progress, b.String())
		}
		for {
			select {
			case <-ctx.Done():
				render(true)
				return
			case <-t.C:
				render(false)
			}
		}
	}()
	return func() { cancel(); <-done }
}

// terminalWidth is the display's width ($COLUMNS, else 160).
func terminalWidth() int {
	var w int
	if _, err := fmt.Sscan(os.Getenv("COLUMNS"), &w); err == nil && w > 20 {
		return w
	}
	return 160
}

// file builds matrix.json's content.
func (m *matrix) file(c *cli.Context, cells []*matrixCell) *MatrixFile {
	mf := &MatrixFile{Schema: MatrixSchema, Started: m.started, Finished: m.ended, Dir: m.dir,
		Parallel: max(m.parallel, 1), Command: os.Args, Version: version}
	for _, cell := range cells {
		mc := MatrixCell{Experiment: cell.Experiment, Device: cell.Device, Variant: cell.Variant}
		if cell.err != nil {
			mc.Error = cell.err.Error()
		}
		if r := cell.res; r != nil {
			rec := &r.Record
			mc.RunDir, _ = filepath.Rel(m.dir, r.Dir)
			mc.RequestsOK, mc.RequestsFailed = rec.Results.RequestsOK, rec.Results.RequestsFailed
			mc.MaxStartError, mc.MaxGapError, mc.OutOfOrder = rec.Results.MaxStartError, rec.Results.MaxGapError, rec.Results.OutOfOrder
			mc.WireGapError = rec.Results.WireGapError
			mc.ExpectationMet, mc.Expect = rec.ExpectationMet, rec.Expect
			mc.WallS = rec.Finished.Sub(rec.Started).Round(10 * time.Millisecond).Seconds()
			if r.Analysis != nil {
				t := &r.Analysis.Totals
				mc.Duels, mc.DuelsAfterWorkload, mc.DuelSegments = t.Duels, t.DuelsAfterWorkload, t.DuelSegments
				mc.DuelSeconds = float64(t.DuelSeconds)
				mc.Segments, mc.RSTs = t.Segments, t.RSTs
			}
			mc.DuelsOngoingAfterStop = r.OngoingAfterStop()
			mc.LongestDuelS = r.LongestDuel().Seconds()
			if r.Summary != nil {
				n, last := r.Summary.AfterStop()
				mc.SegmentsAfterStop, mc.LastAfterStopS = n, last.Seconds()
			}
		}
		mf.Cells = append(mf.Cells, mc)
	}
	return mf
}

// writeMatrixTable prints the table: one row per cell.
func writeMatrixTable(w io.Writer, mf *MatrixFile) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "experiment\tdevice\trequests ok/failed\tduels\tafter stop (going on)\tlongest duel\tduel segs / s\tlast seg after stop\tsched err client / wire / out of order\texpectation")
	for _, mc := range mf.Cells {
		exp := "-"
		if mc.ExpectationMet != nil {
			exp = "met"
			if !*mc.ExpectationMet {
				exp = "NOT MET"
				for _, e := range mc.Expect {
					if !e.Met {
						exp += fmt.Sprintf(" (%s %d, want %s)", e.Figure, e.Value, e.Want)
						break
					}
				}
			}
		}
		if mc.Error != "" {
			exp += " error: " + firstLine(mc.Error)
		}
		name := mc.Experiment
		if mc.Variant != "" {
			name += " +" + mc.Variant
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%d (%d)\t%.1fs\t%d / %.1fs\t%.1fs\t%s / %s / %d\t%s\n",
			name, mc.Device, mc.RequestsOK, mc.RequestsFailed, mc.Duels, mc.DuelsAfterWorkload, mc.DuelsOngoingAfterStop,
			mc.LongestDuelS, mc.DuelSegments, mc.DuelSeconds, mc.LastAfterStopS, orDash(mc.MaxStartError), orDash(mc.WireGapError), mc.OutOfOrder, exp)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// writeMatrixHTML writes matrix.html: the table, a small timeline per run
// (the connections' spans and the duels, against the client's stop) and
// links to each run's report. It needs no network.
func writeMatrixHTML(w io.Writer, mf *MatrixFile, cells []*matrixCell) error {
	type row struct {
		MatrixCell
		Timeline template.HTML
		Met      string
	}
	var rows []row
	for i, mc := range mf.Cells {
		r := row{MatrixCell: mc, Met: "-"}
		if mc.ExpectationMet != nil {
			r.Met = map[bool]string{true: "met", false: "not met"}[*mc.ExpectationMet]
		}
		r.Timeline = timelineSVG(cells[i].res)
		rows = append(rows, r)
	}
	return matrixPage.Execute(w, struct {
		File *MatrixFile
		Rows []row
	}{mf, rows})
}

// timelineSVG draws one run: the workload span, each connection as a thin
// grey bar, each duel as a red bar, and the client's stop as a line.
func timelineSVG(r *lab.Result) template.HTML {
	if r == nil || r.Analysis == nil || r.Analysis.First.IsZero() {
		return ""
	}
	const width, height = 360.0, 28.0
	t0 := r.Analysis.First
	end := r.Analysis.Last
	if stop := r.Record.WorkloadEnd; !stop.IsZero() && stop.After(end) {
		end = stop
	}
	span := end.Sub(t0).Seconds()
	if span <= 0 {
		span = 1
	}
	x := func(t time.Time) float64 { return width * t.Sub(t0).Seconds() / span }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f"><rect width="100%%" height="100%%" fill="#fafafa"/>`, width, height, width, height)
	for _, c := range r.Analysis.Connections {
		e := c.End
		fmt.Fprintf(&b, `<rect x="%.1f" y="4" width="%.1f" height="8" fill="#9ab" opacity="0.5"/>`, x(c.Start), max(x(e)-x(c.Start), 1))
	}
	for _, d := range r.Analysis.Duels {
		fmt.Fprintf(&b, `<rect x="%.1f" y="15" width="%.1f" height="8" fill="#c33"><title>duel %d: %s, %d segments, %.1fs</title></rect>`,
			x(d.Start), max(x(d.End)-x(d.Start), 2), d.ID, d.Cause, d.Segments, float64(d.Duration))
	}
	if stop := r.Record.WorkloadEnd; !stop.IsZero() {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="0" y2="%.0f" stroke="#000" stroke-dasharray="2,2"><title>client stopped</title></line>`, x(stop), x(stop), height)
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="9" text-anchor="end">%.0fs</text></svg>`, width-2, height-1, span)
	return template.HTML(b.String())
}

var matrixPage = template.Must(template.New("matrix").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>closeduel matrix {{.File.Started.Format "2006-01-02 15:04:05Z"}}</title>
<style>body{font:13px sans-serif;margin:1em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
td.l,th.l{text-align:left}.met{background:#dfd}.notmet{background:#fdd}</style></head><body>
<h1>closeduel matrix</h1>
<p>{{len .Rows}} runs, {{.File.Parallel}} at once, {{.File.Started.Format "2006-01-02 15:04:05Z"}} to {{.File.Finished.Format "15:04:05Z"}}; closeduel {{.File.Version}}.
Timeline: connections grey, duels red, the client's stop dashed. Schema {{.File.Schema}} (matrix.json).</p>
<table><tr><th class="l">experiment</th><th class="l">device</th><th>requests ok/failed</th><th>duels</th><th>after stop (going on)</th><th>longest duel s</th><th>duel segs / s</th><th>last seg after stop s</th><th>sched err client / wire / out of order</th><th class="l">expectation</th><th class="l">timeline</th><th class="l">report</th></tr>
{{range .Rows}}<tr><td class="l">{{.Experiment}}</td><td class="l">{{.Device}}</td><td>{{.RequestsOK}}/{{.RequestsFailed}}</td><td>{{.Duels}}</td><td>{{.DuelsAfterWorkload}} ({{.DuelsOngoingAfterStop}})</td><td>{{printf "%.1f" .LongestDuelS}}</td><td>{{.DuelSegments}} / {{printf "%.1f" .DuelSeconds}}</td><td>{{printf "%.1f" .LastAfterStopS}}</td><td>{{or .MaxStartError "-"}} / {{or .WireGapError "-"}} / {{.OutOfOrder}}</td>
<td class="l {{if eq .Met "met"}}met{{else if eq .Met "not met"}}notmet{{end}}">{{.Met}}{{range .Expect}}<br>{{.Figure}} {{.Value}} (want {{.Want}}){{end}}{{if .Error}}<br>error: {{.Error}}{{end}}</td>
<td class="l">{{.Timeline}}</td><td class="l">{{if .RunDir}}<a href="{{.RunDir}}/report.html">report</a> · <a href="{{.RunDir}}/report.txt">text</a> · <a href="{{.RunDir}}/run.yaml">run.yaml</a>{{end}}</td></tr>
{{end}}</table></body></html>
`))
