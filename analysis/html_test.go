package analysis

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
)

// chromium runs headless Chromium on a page and returns its screenshot
// and its log (where console messages appear).
func chromium(t *testing.T, page string) (image.Image, string) {
	t.Helper()
	shot := filepath.Join(t.TempDir(), "shot.png")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "chromium", "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
		"--user-data-dir="+t.TempDir(), "--enable-logging=stderr", "--v=0", "--window-size=1100,1900",
		"--screenshot="+shot, "file://"+page)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, log.String())
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v\n%s", err, log.String())
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img, log.String()
}

var consoleLine = regexp.MustCompile(`(?m)^.*(CONSOLE|Uncaught|Failed to load resource).*$`)

// countColor counts the pixels within a small distance of hex.
func countColor(img image.Image, hex string) int {
	var want color.RGBA
	for i, p := range []*uint8{&want.R, &want.G, &want.B} {
		v := hex[1+2*i : 3+2*i]
		var n uint8
		for _, c := range v {
			n <<= 4
			switch {
			case c >= '0' && c <= '9':
				n |= uint8(c - '0')
			default:
				n |= uint8(c-'a') + 10
			}
		}
		*p = n
	}
	near := func(a uint32, b uint8) bool { d := int(a>>8) - int(b); return d > -12 && d < 12 }
	n := 0
	bnd := img.Bounds()
	for y := bnd.Min.Y; y < bnd.Max.Y; y++ {
		for x := bnd.Min.X; x < bnd.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if near(r, want.R) && near(g, want.G) && near(b, want.B) {
				n++
			}
		}
	}
	return n
}

func requireChromium(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("chromium"); err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed and CI must run this test (apt-get install chromium)")
	}
	t.Skip("skipped: chromium is not installed (apt-get install chromium)")
}

// TestHTMLRendersInChromium: the page of a capture with a duel is
// self-contained, renders with no console message, and the screenshot
// shows the timeline bars and the duel's ladder.
func TestHTMLRendersInChromium(t *testing.T) {
	requireChromium(t)
	s := newSynth()
	scenarios[0].build(s)
	scenarios[4].build(s)
	s.t += int64(50 * time.Millisecond)
	scenarios[1].build(s)
	scenarios[5].build(s)
	p := tempPath(t, "x.pcap")
	s.writePcap(t, p, layers.LinkTypeEthernet)
	r := analyzeFiles(t, Config{}, p)
	var b bytes.Buffer
	if err := WriteHTML(&b, r); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, bad := range []string{"<script", "<link", "@import", "url(http", `src="http`, `href="http`} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q: it must work offline", bad)
		}
	}
	if n := strings.Count(page, `class="ladder"`); n != r.Totals.Duels || n != 2 {
		t.Errorf("%d ladder diagrams for %d duels, want 2", n, r.Totals.Duels)
	}
	path := filepath.Join(t.TempDir(), "report.html")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	img, log := chromium(t, path)
	if m := consoleLine.FindAllString(log, -1); len(m) > 0 {
		t.Errorf("console messages:\n%s", strings.Join(m, "\n"))
	}
	if n := strings.Count(page, "<rect "); n != 2*r.Totals.Duels+r.Totals.Connections {
		t.Errorf("timeline has %d rects, want a bar per connection (%d) and a band and a bar per duel (%d)", n, r.Totals.Connections, r.Totals.Duels)
	}
	// The legend's swatches are 12x12 = 144 pixels: the plots must show
	// far more of each colour than that.
	for _, c := range []struct {
		name, hex string
		min       int
	}{
		{"duel bars", duelColor, 1000},
		{"RST arrows", ladderColor("RST"), 2000},
		{"SYN arrows", ladderColor("SYN"), 300},
	} {
		if n := countColor(img, c.hex); n < c.min {
			t.Errorf("screenshot has %d pixels of the %s colour %s, want at least %d", n, c.name, c.hex, c.min)
		}
	}
	if os.Getenv("CLOSEDUEL_KEEP_SCREENSHOT") != "" {
		f, _ := os.Create(os.Getenv("CLOSEDUEL_KEEP_SCREENSHOT"))
		png.Encode(f, img)
		f.Close()
	}
}

// TestChromiumCatchesConsoleErrors proves the console check can fail: a
// page that logs an error is caught.
func TestChromiumCatchesConsoleErrors(t *testing.T) {
	requireChromium(t)
	path := filepath.Join(t.TempDir(), "bad.html")
	os.WriteFile(path, []byte(`<!DOCTYPE html><html><body><p>x</p><script>console.error("probe-error")</script></body></html>`), 0o644)
	_, log := chromium(t, path)
	if !strings.Contains(strings.Join(consoleLine.FindAllString(log, -1), "\n"), "probe-error") {
		t.Errorf("the console error was not seen in the log:\n%s", log)
	}
}

// TestCompareHTML: the comparison page holds both reports and the figures.
func TestCompareHTML(t *testing.T) {
	a := analyzeFiles(t, Config{}, "testdata/linux-clean-churn.pcap")
	b := analyzeFiles(t, Config{}, "testdata/linux-lost-final-ack.pcap")
	var buf bytes.Buffer
	if err := WriteCompareHTML(&buf, Compare(a, b)); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, want := range []string{"A/B comparison", "A: Totals", "B: Totals", "linux-clean-churn.pcap", "linux-lost-final-ack.pcap"} {
		if !strings.Contains(page, want) {
			t.Errorf("compare page lacks %q", want)
		}
	}
}
