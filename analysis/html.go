package analysis

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"strings"
	"time"
)

// closeColors colours the timeline by close kind; duels are drawn in
// duelColor.
var closeColors = [numCloseKinds]string{
	CloseUnfinished: "#757575",
	CloseFIN:        "#2e7d32",
	CloseFINRST:     "#ef6c00",
	CloseRST:        "#c62828",
	CloseHalfOpen:   "#6a1b9a",
}

const duelColor = "#ec407a"

// htmlMaxRows bounds the connection table of the page.
const htmlMaxRows = 300

// WriteHTML writes the report as one self-contained HTML page: inline
// CSS and SVG, no script and nothing fetched.
func WriteHTML(w io.Writer, r *Report) error {
	data := htmlData{Title: "closeduel analysis", Schema: r.Schema, Reports: []htmlReport{makeHTMLReport(r, "")}}
	return pageTemplate.Execute(w, data)
}

// WriteCompareHTML writes a comparison as one self-contained HTML page:
// the figures side by side, then each report.
func WriteCompareHTML(w io.Writer, c *Comparison) error {
	data := htmlData{Title: "closeduel comparison", Schema: c.Schema, Compare: c,
		Reports: []htmlReport{makeHTMLReport(c.A, "A: "), makeHTMLReport(c.B, "B: ")}}
	return pageTemplate.Execute(w, data)
}

type htmlData struct {
	Title   string
	Schema  string
	Compare *Comparison
	Reports []htmlReport
}

type htmlReport struct {
	Prefix      string
	Report      *Report
	Totals      [][2]string
	Timeline    template.HTML
	Legend      []legendItem
	Duels       []htmlDuel
	Connections []*Connection
	Hidden      int
}

type legendItem struct{ Name, Color string }

type htmlDuel struct {
	*Duel
	Ladder   template.HTML
	ByOrig   string
	ByResp   string
	After    string
	Verdicts string
}

func makeHTMLReport(r *Report, prefix string) htmlReport {
	h := htmlReport{Prefix: prefix, Report: r, Totals: totalRows(r), Timeline: timelineSVG(r)}
	for k := range numCloseKinds {
		h.Legend = append(h.Legend, legendItem{k.String(), closeColors[k]})
	}
	h.Legend = append(h.Legend, legendItem{"duel", duelColor})
	for i := range r.Duels {
		d := &r.Duels[i]
		after := "unknown (no run metadata)"
		if d.AfterWorkload != nil {
			after = "no"
			if *d.AfterWorkload {
				after = "yes, " + fmtSec(d.AfterWorkloadSeconds) + " after it stopped"
			}
			if !r.InferredWorkloadEnd.IsZero() {
				after += " (end inferred: the client's last new connection)"
			}
		}
		h.Duels = append(h.Duels, htmlDuel{Duel: d, Ladder: ladderSVG(d, i), ByOrig: fmtCounts(&d.ByDirection[0]),
			ByResp: fmtCounts(&d.ByDirection[1]), After: after, Verdicts: fmtVerdicts(&d.Verdicts)})
	}
	for i := range r.Connections {
		c := &r.Connections[i]
		if c.Clean && len(r.Connections) > htmlMaxRows {
			continue
		}
		if len(h.Connections) == htmlMaxRows {
			h.Hidden++
			continue
		}
		h.Connections = append(h.Connections, c)
	}
	return h
}

// timelineSVG draws each connection as a bar from its first to its last
// segment, coloured by how it closed, packed into lanes, with the duels
// as red bands and a track of their own.
func timelineSVG(r *Report) template.HTML {
	const (
		left, width = 70.0, 900.0
		laneH       = 7.0
		maxLanes    = 120
	)
	if r.First.IsZero() || len(r.Connections) == 0 {
		return template.HTML(`<p class="note">no connections to draw</p>`)
	}
	t0 := r.First
	span := r.Last.Sub(t0).Seconds()
	if span <= 0 {
		span = 1e-3
	}
	x := func(t time.Time) float64 { return left + width*t.Sub(t0).Seconds()/span }
	// Pack the bars into lanes: each goes into the first lane free at its
	// start.
	conns := make([]*Connection, len(r.Connections))
	for i := range r.Connections {
		conns[i] = &r.Connections[i]
	}
	sort.SliceStable(conns, func(i, j int) bool { return conns[i].Start.Before(conns[j].Start) })
	var laneEnd []float64
	var bars strings.Builder
	dropped := 0
	for _, c := range conns {
		x1, x2 := x(c.Start), math.Max(x(c.End), x(c.Start)+1.5)
		lane := -1
		for i, e := range laneEnd {
			if e+1 < x1 {
				lane = i
				break
			}
		}
		if lane < 0 {
			if len(laneEnd) == maxLanes {
				dropped++
				continue
			}
			laneEnd = append(laneEnd, 0)
			lane = len(laneEnd) - 1
		}
		laneEnd[lane] = x2
		fmt.Fprintf(&bars, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s</title></rect>`,
			x1, 10+float64(lane)*laneH, x2-x1, laneH-2, closeColors[c.Close%numCloseKinds],
			template.HTMLEscapeString(fmt.Sprintf("#%d %s > %s, %s, %s, %s", c.ID, c.Orig, c.Resp, c.Close, fmtSec(c.Duration), c.History)))
	}
	lanesH := float64(len(laneEnd)) * laneH
	duelY := 10 + lanesH + 8
	height := duelY + 14 + 30
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="connection timeline">`,
		left+width+50, height, left+width+50, height)
	for _, d := range r.Duels {
		x1, x2 := x(d.Start), math.Max(x(d.End), x(d.Start)+2)
		fmt.Fprintf(&b, `<rect x="%.1f" y="6" width="%.1f" height="%.1f" fill="%s" fill-opacity="0.12"/>`, x1, x2-x1, duelY+10, duelColor)
	}
	b.WriteString(bars.String())
	for _, d := range r.Duels {
		x1, x2 := x(d.Start), math.Max(x(d.End), x(d.Start)+2)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="10" fill="%s"><title>%s</title></rect>`, x1, duelY, x2-x1, duelColor,
			template.HTMLEscapeString(fmt.Sprintf("duel %d %s > %s, %s, %d segments, %s", d.ID, d.Orig, d.Resp, fmtSec(d.Duration), d.Segments, d.Cause)))
	}
	fmt.Fprintf(&b, `<text x="4" y="%.1f" class="lbl">conns</text><text x="4" y="%.1f" class="lbl">duels</text>`, 10+math.Min(lanesH, 20)/2+3, duelY+9)
	marks := []struct {
		t    time.Time
		name string
	}{{r.InferredWorkloadEnd, "workload end (inferred)"}}
	if r.Run != nil {
		marks = append(marks, []struct {
			t    time.Time
			name string
		}{{r.Run.WorkloadStart, "workload start"}, {r.Run.WorkloadEnd, "workload end"}}...)
	}
	{
		for _, m := range marks {
			if m.t.IsZero() || m.t.Before(t0) || m.t.After(r.Last) {
				continue
			}
			mx := x(m.t)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="2" x2="%.1f" y2="%.1f" stroke="#1565c0" stroke-dasharray="4,3"><title>%s %s</title></line>`,
				mx, mx, duelY+12, m.name, fmtTime(m.t))
		}
	}
	axisY := duelY + 20
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#444"/>`, left, axisY, left+width, axisY)
	for i := 0; i <= 5; i++ {
		tx := left + width*float64(i)/5
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#444"/><text x="%.1f" y="%.1f" class="lbl" text-anchor="middle">+%s</text>`,
			tx, axisY, tx, axisY+4, tx, axisY+15, fmtDur(time.Duration(span*1e9*float64(i)/5)))
	}
	b.WriteString(`</svg>`)
	if dropped > 0 {
		fmt.Fprintf(&b, `<p class="note">%d connections not drawn (more than %d overlapping lanes)</p>`, dropped, maxLanes)
	}
	if r.ConnectionsOmitted > 0 {
		fmt.Fprintf(&b, `<p class="note">%d connections were not kept in the report and are not drawn</p>`, r.ConnectionsOmitted)
	}
	return template.HTML(b.String())
}

// ladderColor colours a ladder arrow by its flags.
func ladderColor(flags string) string {
	switch {
	case strings.Contains(flags, "RST"):
		return "#c62828"
	case strings.Contains(flags, "SYN"):
		return "#1565c0"
	case strings.Contains(flags, "FIN"):
		return "#6a1b9a"
	}
	return "#37474f"
}

// ladderSVG draws a duel as Wireshark's flow graph does: a vertical line
// per host, an arrow per segment, time down the left.
func ladderSVG(d *Duel, n int) template.HTML {
	const (
		xo, xr = 260.0, 760.0
		rowH   = 24.0
		top    = 40.0
	)
	rows := len(d.Ladder)
	height := top + float64(rows)*rowH + 30
	if d.LadderOmitted > 0 {
		height += 16
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="ladder" xmlns="http://www.w3.org/2000/svg" width="900" height="%.0f" viewBox="0 0 900 %.0f" role="img" aria-label="duel %d flow graph">`, height, height, d.ID)
	fmt.Fprintf(&b, `<defs><marker id="ah%d" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>`, n)
	esc := template.HTMLEscapeString
	fmt.Fprintf(&b, `<text x="%.0f" y="16" text-anchor="middle" class="host">%s (orig)</text><text x="%.0f" y="16" text-anchor="middle" class="host">%s (resp)</text>`, xo, esc(d.Orig), xr, esc(d.Resp))
	fmt.Fprintf(&b, `<line x1="%.0f" y1="24" x2="%.0f" y2="%.0f" stroke="#999"/><line x1="%.0f" y1="24" x2="%.0f" y2="%.0f" stroke="#999"/>`, xo, xo, height-10, xr, xr, height-10)
	for i, s := range d.Ladder {
		y := top + float64(i)*rowH
		x1, x2 := xo, xr
		if s.Dir == dirNames[1] {
			x1, x2 = xr, xo
		}
		color := ladderColor(s.Flags)
		dash := ""
		end := x2
		if s.Dropped {
			dash = ` stroke-dasharray="5,3"`
			end = x1 + (x2-x1)*0.7
		}
		fmt.Fprintf(&b, `<text x="8" y="%.1f" class="t">+%s</text>`, y+12, fmtDur(s.Time.Sub(d.Start)))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1.6"%s marker-end="url(#ah%d)"/>`, x1, y, end, y+12, color, dash, n)
		if s.Dropped {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="x" text-anchor="middle">✕</text>`, end, y+17)
		}
		label := fmt.Sprintf("%s seq=%d ack=%d", s.Flags, s.Seq, s.Ack)
		if s.Len > 0 {
			label += fmt.Sprintf(" len=%d", s.Len)
		}
		if s.Note != "" {
			label += " [" + s.Note + "]"
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" class="seg" fill="%s">%s</text>`, (xo+xr)/2, y+3, color, esc(label))
	}
	if d.LadderOmitted > 0 {
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="middle" class="t">… %d more segments</text>`, (xo+xr)/2, top+float64(rows)*rowH+8, d.LadderOmitted)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"time": fmtTime,
	"sec":  fmtSec,
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="closeduel {{.Schema}}">
<title>{{.Title}}</title>
<style>
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 8px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px}
.legend span{display:inline-block;margin-right:14px}.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}
.note{color:#666;font-size:12.5px}
svg .lbl{font-size:11px;fill:#444}svg .host{font-size:13px;font-weight:600}svg .t{font-size:11px;fill:#555;font-family:ui-monospace,monospace}
svg .seg{font-size:11.5px;font-family:ui-monospace,monospace}svg .x{font-size:14px;fill:#c62828;font-weight:700}
.duel{border:1px solid #eee;padding:8px 12px;margin:12px 0;border-radius:4px}
</style></head><body>
<h1>{{.Title}}</h1>
<p class="note">Figures as defined in analysis/DEFINITIONS.md ({{.Schema}}).</p>
{{with .Compare}}
<h2>A/B comparison</h2>
<table><tr><th>figure</th><th>A</th><th>B</th><th>change</th></tr>
{{range .Figures}}<tr><td>{{.Name}}</td><td class="n">{{.FormatValue .A}}</td><td class="n">{{.FormatValue .B}}</td><td class="n">{{.FormatChange}}</td></tr>
{{end}}</table>
{{end}}
{{range .Reports}}{{$p := .Prefix}}
<h2>{{$p}}Inputs</h2>
<table><tr><th>file</th><th>format</th><th>records</th><th>segments</th><th>skipped</th><th>role</th></tr>
{{range .Report.Inputs}}<tr><td class="mono">{{.Path}}</td><td>{{.Format}} {{.LinkType}}</td><td class="n">{{.Records}}</td><td class="n">{{.Segments}}</td><td class="n">{{.Skipped}}</td><td>{{.Role}}{{range .Warnings}}<br><span class="note">warning: {{.}}</span>{{end}}</td></tr>
{{end}}</table>
{{with .Report.Run}}<p>Run <code>{{.Dir}}</code>{{with .Experiment}}, experiment <b>{{.}}</b>{{end}}{{if not .WorkloadEnd.IsZero}}, workload {{time .WorkloadStart}} to {{time .WorkloadEnd}}{{end}}.</p>{{end}}
<p>From {{time .Report.First}} to {{time .Report.Last}} (UTC).{{if not .Report.InferredWorkloadEnd.IsZero}} No run metadata: the workload's end is inferred as the client's last new connection, {{time .Report.InferredWorkloadEnd}}.{{end}}{{if .Report.Totals.EvictedTuples}} <b>{{.Report.Totals.EvictedTuples}} tuples forgotten early</b> (max tuples {{.Report.Settings.MaxTuples}}).{{end}}</p>
<h2>{{$p}}Totals</h2>
<table>{{range .Totals}}<tr><td>{{index . 0}}</td><td class="n">{{index . 1}}</td></tr>{{end}}</table>
<h2>{{$p}}Timeline</h2>
<div class="legend">{{range .Legend}}<span><i style="background:{{.Color}}"></i>{{.Name}}</span>{{end}}</div>
{{.Timeline}}
<h2>{{$p}}Duels ({{.Report.Totals.Duels}})</h2>
{{if not .Duels}}<p>No duel.</p>{{end}}
{{range .Duels}}<div class="duel" id="{{$p}}duel-{{.ID}}">
<h3>Duel {{.ID}}: <span class="mono">{{.Orig}} &gt; {{.Resp}}</span></h3>
<table>
<tr><th>start</th><td>{{time .Start}}</td><th>duration</th><td>{{sec .Duration}}{{if .Ongoing}} (still going when the capture ended){{end}}</td></tr>
<tr><th>cause</th><td>{{.Cause}}</td><th>trigger</th><td class="mono">{{.Trigger.Dir}} {{.Trigger.Flags}} seq={{.Trigger.Seq}} ack={{.Trigger.Ack}}</td></tr>
<tr><th>segments</th><td>{{.Segments}} ({{.Turns}} turns, {{.Dropped}} dropped)</td><th>after workload</th><td>{{.After}}</td></tr>
<tr><th>orig&gt;resp</th><td>{{.ByOrig}}</td><th>resp&gt;orig</th><td>{{.ByResp}}</td></tr>
<tr><th>verdicts</th><td colspan="3">{{.Verdicts}}</td></tr>
</table>
{{.Ladder}}
</div>{{end}}
<h2>{{$p}}Connections</h2>
<p class="note">{{.Report.Totals.Connections}} connections{{if .Hidden}}; {{.Hidden}} more rows not shown{{end}}{{if gt (len .Report.Connections) 300}}; clean ones not listed{{end}}.</p>
<table><tr><th>id</th><th>orig &gt; resp</th><th>start</th><th>duration</th><th>close</th><th>closer</th><th>segments</th><th>retx</th><th>RST (ignored)</th><th>history</th></tr>
{{range .Connections}}<tr><td class="n">{{.ID}}</td><td class="mono">{{.Orig}} &gt; {{.Resp}}</td><td>{{time .Start}}</td><td class="n">{{sec .Duration}}</td><td>{{.Close}}{{if .TimeWaitReuse}} tw-reuse{{end}}{{if .Failed}} failed{{end}}{{if .Duels}} duel{{end}}</td><td>{{.Closer}}</td><td class="n">{{index .Segments 0}}/{{index .Segments 1}}</td><td class="n">{{.Retransmissions}}</td><td class="n">{{.RSTs}} ({{.IgnoredRSTs}})</td><td class="mono">{{.History}}</td></tr>
{{end}}</table>
{{end}}
</body></html>
`))
