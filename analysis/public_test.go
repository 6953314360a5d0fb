package analysis

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/closeduel/closeduel/internal/roottest"
	"github.com/closeduel/closeduel/segment"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// TestPublicCaptures is the agreement harness against Wireshark on
// captures from outside this project (the tcpdump project's tests/
// directory, Wireshark's test captures). They are not in the repository:
// fetch them into a directory and set CLOSEDUEL_PUBLIC_CAPTURES=DIR; the
// test skips otherwise. For every capture in which tshark finds TCP it
// compares the connection, retransmission and RST counts with tshark's
// two-pass analysis and sorts each capture into the first class of
// difference it shows (its framing, fragments, lengths, time, long gaps).
// CLOSEDUEL_BEFORE_BIN=PATH adds a column for another closeduel binary
// (`PATH analyze --json`), so one run measures before and after a change;
// CLOSEDUEL_PUBLIC_REPORT=FILE writes the table and every disagreement.
// The table is in DEFINITIONS.md ("Public captures").
func TestPublicCaptures(t *testing.T) {
	dir := os.Getenv("CLOSEDUEL_PUBLIC_CAPTURES")
	if dir == "" {
		t.Skip("skipped: set CLOSEDUEL_PUBLIC_CAPTURES=DIR to a directory of public captures (e.g. the tcpdump repository's tests/*.pcap)")
	}
	roottest.RequireTools(t, "tshark")
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	before := os.Getenv("CLOSEDUEL_BEFORE_BIN")
	type row struct{ files, agreeBefore, agreeAfter int }
	rows := map[string]*row{}
	var lines []string
	withTCP := 0
	for _, p := range files {
		want, err := tsharkPublic(p, "")
		if err != nil || want[0] == 0 {
			continue // tshark cannot read it, or there is no TCP in it
		}
		withTCP++
		class := classifyCapture(p)
		got, aerr := analyzeCounts(p)
		if aerr != nil {
			class = "closeduel refuses the file"
		} else if got != want {
			// TCP headers quoted inside ICMP errors or sampled by sFlow
			// are TCP to tshark, not traffic here.
			if own, err := tsharkPublic(p, "not (icmp or icmpv6 or sflow)"); err == nil && own == got {
				class = "TCP quoted in ICMP errors or sFlow samples (by definition)"
			}
		}
		r := rows[class]
		if r == nil {
			r = &row{}
			rows[class] = r
		}
		r.files++
		if aerr == nil && got == want {
			r.agreeAfter++
		}
		var old [3]int
		var berr error
		if before != "" {
			old, berr = binaryCounts(before, p)
			if berr == nil && old == want {
				r.agreeBefore++
			}
		}
		if got != want || (before != "" && old != want) {
			lines = append(lines, fmt.Sprintf("%s\t%s\ttshark %v\tafter %v %v\tbefore %v %v", filepath.Base(p), class, want, got, errText(aerr), old, errText(berr)))
		}
	}
	classes := make([]string, 0, len(rows))
	for c := range rows {
		classes = append(classes, c)
	}
	sort.Slice(classes, func(i, j int) bool { return rows[classes[i]].files > rows[classes[j]].files })
	var b strings.Builder
	fmt.Fprintf(&b, "| class (first that applies) | captures | agree before | agree after |\n| --- | --- | --- | --- |\n")
	var tb, ta int
	for _, c := range classes {
		r := rows[c]
		tb += r.agreeBefore
		ta += r.agreeAfter
		fmt.Fprintf(&b, "| %s | %d | %d | %d |\n", c, r.files, r.agreeBefore, r.agreeAfter)
	}
	fmt.Fprintf(&b, "| **all captures with TCP** | **%d** | **%d (%.0f %%)** | **%d (%.0f %%)** |\n", withTCP, tb, pct(tb, withTCP), ta, pct(ta, withTCP))
	t.Logf("%d files, %d with TCP\n%s", len(files), withTCP, b.String())
	if out := os.Getenv("CLOSEDUEL_PUBLIC_REPORT"); out != "" {
		sort.Strings(lines)
		text := b.String() + "\ndisagreements (file, class, [connections retransmissions RSTs]):\n" + strings.Join(lines, "\n") + "\n"
		if err := os.WriteFile(out, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func pct(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if len(s) > 80 {
		s = s[:80]
	}
	return "(" + s + ")"
}

// tsharkPublic returns tshark's two-pass [streams retransmissions RSTs],
// of the TCP frames that also match filter when it is not empty.
func tsharkPublic(path, filter string) ([3]int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	display := "tcp"
	if filter != "" {
		display += " and " + filter
	}
	out, err := exec.CommandContext(ctx, "tshark", "-r", path, "-2", "-Y", display, "-T", "fields", "-E", "occurrence=f",
		"-e", "tcp.stream", "-e", "tcp.analysis.retransmission", "-e", "tcp.flags.reset").Output()
	if err != nil && len(out) == 0 {
		return [3]int{}, err
	}
	var c [3]int
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 3 || f[0] == "" {
			continue
		}
		seen[f[0]] = true
		if f[1] != "" {
			c[1]++
		}
		if v, _ := strconv.ParseBool(strings.TrimSpace(f[2])); v {
			c[2]++
		}
	}
	c[0] = len(seen)
	return c, nil
}

// analyzeCounts runs this package's analysis on one file.
func analyzeCounts(path string) ([3]int, error) {
	r, err := Analyze(context.Background(), Config{}, []string{path})
	if err != nil {
		return [3]int{}, err
	}
	return [3]int{r.Totals.Connections, r.Totals.Retransmissions, r.Totals.RSTs}, nil
}

// binaryCounts runs `bin analyze --json path`.
func binaryCounts(bin, path string) ([3]int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "analyze", "--json", path).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return [3]int{}, fmt.Errorf("%s", strings.TrimSpace(string(ee.Stderr)))
		}
		return [3]int{}, err
	}
	var r struct {
		Totals struct {
			Connections     int `json:"connections"`
			Retransmissions int `json:"retransmissions"`
			RSTs            int `json:"rsts"`
		} `json:"totals"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return [3]int{}, err
	}
	return [3]int{r.Totals.Connections, r.Totals.Retransmissions, r.Totals.RSTs}, nil
}

// classifyCapture names the first class of difference a capture shows,
// from its records alone (the same for every closeduel version compared).
func classifyCapture(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unreadable"
	}
	defer f.Close()
	br := bufio.NewReader(f)
	head, _ := br.Peek(4)
	var next func() ([]byte, gopacket.CaptureInfo, layers.LinkType, error)
	switch DetectFormat(head) {
	case FormatPcap:
		r, err := pcapgo.NewReader(br)
		if err != nil {
			return "unreadable"
		}
		next = func() ([]byte, gopacket.CaptureInfo, layers.LinkType, error) {
			d, ci, err := r.ReadPacketData()
			return d, ci, r.LinkType(), err
		}
	case FormatPcapng:
		r, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err != nil {
			return "unreadable"
		}
		next = func() ([]byte, gopacket.CaptureInfo, layers.LinkType, error) {
			d, ci, err := r.ReadPacketData()
			lt := layers.LinkTypeNull
			if len(ci.AncillaryData) > 0 {
				lt, _ = ci.AncillaryData[0].(layers.LinkType)
			}
			return d, ci, lt, err
		}
	default:
		return "not a capture"
	}
	decs := map[layers.LinkType]*segment.Decoder{}
	var via segment.Via
	var undecoded, newLink, backwards, longGap, readErr, cut bool
	last := map[segment.Tuple]time.Time{}
	var prev time.Time
	for {
		data, ci, lt, err := next()
		if err != nil {
			readErr = !errors.Is(err, io.EOF)
			break
		}
		d, ok := decs[lt]
		if !ok {
			d, _ = segment.NewDecoder(lt)
			decs[lt] = d
		}
		if d == nil {
			undecoded = true
			continue
		}
		switch lt {
		case layers.LinkTypeNull, layers.LinkTypePPP, 104, 108, 239, 242:
			newLink = true
		}
		if !prev.IsZero() && ci.Timestamp.Before(prev) {
			backwards = true
		}
		prev = ci.Timestamp
		var seg segment.Segment
		if err := d.DecodeWire(data, ci.Length, &seg); err != nil {
			if errors.Is(err, segment.ErrTruncated) && ci.CaptureLength < ci.Length {
				cut = true
			}
			continue
		}
		via |= seg.Via
		k, _ := seg.Tuple().Canonical()
		if l, ok := last[k]; ok && ci.Timestamp.Sub(l) > 30*time.Second {
			longGap = true
		}
		last[k] = ci.Timestamp
	}
	switch {
	case undecoded:
		return "link type not decoded (ARCNET, Juniper, 802.11, USB, ...)"
	case backwards:
		return "time goes backwards"
	case longGap:
		return "gap > 30 s on a tuple (forgetting timers)"
	case newLink:
		return "link type Null, Loop, PPP, C-HDLC, NFLOG, IPoIB"
	case via&(segment.ViaVLAN|segment.ViaQinQ|segment.ViaMPLS|segment.ViaLLC|segment.ViaPPPoE) != 0:
		return "VLAN, MPLS, LLC/SNAP or PPPoE framing"
	case via.Tunnelled():
		return "tunnel (IP in IP, GRE, VXLAN, Geneve)"
	case via&segment.ViaIPv6Ext != 0:
		return "IPv6 extension headers"
	case via&segment.ViaFragment != 0:
		return "IP fragments"
	case via&segment.ViaZeroLength != 0:
		return "IP length 0 (TSO, BIG TCP)"
	case via&segment.ViaCapped != 0:
		return "frame shorter than its IP length"
	case via&segment.ViaCutHeader != 0:
		return "TCP options cut by the snap length"
	case cut:
		return "records cut by the snap length"
	case readErr:
		return "a record that cannot be read"
	}
	return "plain"
}
