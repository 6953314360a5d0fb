package main

import (
	"encoding/csv"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// soakPoint is one sample of a soak, as its CSV holds it.
type soakPoint struct {
	seconds, rssKB, heapKB, goroutines float64
}

// readSoakCSV reads the CSV TestSoak writes (CLOSEDUEL_SOAK_OUT).
func readSoakCSV(path string) ([]soakPoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) < 2 || strings.Join(recs[0][:4], ",") != "seconds,rss_kb,heap_kb,goroutines" {
		return nil, fmt.Errorf("%s: not a soak CSV (header %v)", path, recs[0])
	}
	var pts []soakPoint
	for i, r := range recs[1:] {
		var v [4]float64
		for j := range v {
			if v[j], err = strconv.ParseFloat(r[j], 64); err != nil {
				return nil, fmt.Errorf("%s: line %d: %w", path, i+2, err)
			}
		}
		pts = append(pts, soakPoint{v[0], v[1], v[2], v[3]})
	}
	return pts, nil
}

// soakSVG draws RSS and heap in use (MB, left scale) and goroutines
// (right scale) against minutes: the picture of "flat".
func soakSVG(pts []soakPoint) string {
	const w, h, left, right, top, bottom = 720.0, 300.0, 60.0, 60.0, 30.0, 40.0
	maxT, maxMB, maxG := 1.0, 1.0, 1.0
	for _, p := range pts {
		maxT = max(maxT, p.seconds)
		maxMB = max(maxMB, p.rssKB/1024, p.heapKB/1024)
		maxG = max(maxG, p.goroutines)
	}
	maxMB *= 1.25
	maxG *= 2 // the goroutine line sits mid-height, clear of the RSS line
	x := func(s float64) float64 { return left + (w-left-right)*s/maxT }
	y := func(v, top0 float64) float64 { return top + (h-top-bottom)*(1-v/top0) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="%.0f" height="%.0f" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%.0f" y="18">closeduel run under the soak: RSS and heap (MB, left), goroutines (right), over %.0f min</text>`+"\n", left, maxT/60)
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n", left, h-bottom, w-right, h-bottom)
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n", left, top, left, h-bottom)
	for i := 0; i <= 4; i++ {
		v := maxMB * float64(i) / 4
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%.0f</text>`+"\n", left-4, y(v, maxMB)+4, v)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f">%g</text>`+"\n", w-right+4, y(maxG*float64(i)/4, maxG)+4, maxG*float64(i)/4)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%.0f min</text>`+"\n", x(maxT*float64(i)/4), h-bottom+16, maxT*float64(i)/4/60)
	}
	line := func(color, name string, v func(soakPoint) float64, scale float64) {
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="`, color)
		for i, p := range pts {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%.1f,%.1f", x(p.seconds), y(v(p), scale))
		}
		fmt.Fprintf(&b, `"><title>%s</title></polyline>`+"\n", name)
	}
	line("#c0392b", "RSS (MB)", func(p soakPoint) float64 { return p.rssKB / 1024 }, maxMB)
	line("#2980b9", "heap in use (MB)", func(p soakPoint) float64 { return p.heapKB / 1024 }, maxMB)
	line("#27ae60", "goroutines", func(p soakPoint) float64 { return p.goroutines }, maxG)
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" fill="#c0392b">RSS</text><text x="%.0f" y="%.0f" fill="#2980b9">heap</text><text x="%.0f" y="%.0f" fill="#27ae60">goroutines</text>`+"\n",
		left+10, h-6, left+60, h-6, left+110, h-6)
	b.WriteString("</svg>\n")
	return b.String()
}

// TestSoakPlot draws a soak's CSV (CLOSEDUEL_SOAK_PLOT=FILE.csv writes
// FILE.svg beside it); without it, it checks the drawing on three samples.
func TestSoakPlot(t *testing.T) {
	if p := os.Getenv("CLOSEDUEL_SOAK_PLOT"); p != "" {
		pts, err := readSoakCSV(p)
		if err != nil {
			t.Fatal(err)
		}
		out := strings.TrimSuffix(p, ".csv") + ".svg"
		if err := os.WriteFile(out, []byte(soakSVG(pts)), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%d samples drawn in %s", len(pts), out)
		return
	}
	svg := soakSVG([]soakPoint{{0, 17152, 18288, 7}, {900, 27000, 19000, 7}, {1800, 27460, 18272, 7}})
	if n := strings.Count(svg, "<polyline"); n != 3 {
		t.Fatalf("%d polylines, want 3 (RSS, heap, goroutines)", n)
	}
	if !strings.Contains(svg, `points="60.0,`) || !strings.Contains(svg, "660.0,") {
		t.Errorf("the first sample is not at the left axis or the last at the right one:\n%s", svg)
	}
}
