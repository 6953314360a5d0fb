package verdictlog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/closeduel/closeduel/nfq"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// clock is the time WithClock gives the writer in tests.
var clock = t0.Add(-time.Second)

const rulesSHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

// writeFixtures logs every fixture with a rules record first, a toggle
// and a mitigation record before the sixth event and a summary, and returns the two file names.
// It scribbles over each event's packet and decision after Record to
// prove the Writer copied them.
func writeFixtures(t *testing.T, fs []fixture) (jsonPath, pcapPath string, st Stats) {
	t.Helper()
	dir := t.TempDir()
	jsonPath, pcapPath = filepath.Join(dir, "verdicts.jsonl"), filepath.Join(dir, "verdicts.pcapng")
	w, err := Open(Config{JSONPath: jsonPath, PcapPath: pcapPath, SnapLen: fixtureSnapLen, Buffer: 64, Version: "test-1.0"},
		WithClock(func() time.Time { return clock }))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	w.RulesLoaded(t0.Add(-500*time.Millisecond), "rules/library/lost-final-ack.yaml", rulesSHA, "lost-final-ack")
	for i, f := range fs {
		if i == 5 {
			w.Toggled(t0.Add(6500*time.Microsecond), "dup-fin", false)
			w.Mitigation(t0.Add(6600*time.Microsecond), "timewait-guard", true)
		}
		ev := f.ev
		ev.Data = append([]byte(nil), f.ev.Data...)
		if f.ev.Decision != nil {
			d := *f.ev.Decision
			ev.Decision = &d
		}
		w.Record(&ev)
		for j := range ev.Data {
			ev.Data[j] = 0xee
		}
		if ev.Decision != nil {
			*ev.Decision = nfq.Decision{Rule: "scribbled", Action: "scribbled", Dir: "scribbled", Rewrote: "scribbled", Conn: 99}
		}
	}
	w.Summary(map[string]uint64{"packets": uint64(len(fs)), "drops": 2})
	w.Summary(map[string]uint64{"packets": uint64(len(fs)), "lost": 12345, "t": 1}) // reserved keys are ignored
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return jsonPath, pcapPath, w.Stats()
}

// readJSONL decodes every line of a JSON Lines file, numbers as int.
func readJSONL(t *testing.T, name string) []map[string]any {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("line %d: %v: %s", len(recs)+1, err, sc.Bytes())
		}
		if dec.More() {
			t.Fatalf("line %d holds more than one value: %s", len(recs)+1, sc.Bytes())
		}
		for k, v := range m {
			if n, ok := v.(json.Number); ok {
				i, err := n.Int64()
				if err != nil {
					t.Fatalf("line %d: %s is not an integer: %v", len(recs)+1, k, err)
				}
				m[k] = int(i)
			}
		}
		recs = append(recs, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestJSONRoundTrip(t *testing.T) {
	fs := fixtures(t)
	jsonPath, _, st := writeFixtures(t, fs)
	if diff := cmp.Diff(Stats{Recorded: 10, Written: 10}, st); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
	want := []map[string]any{
		{"v": 1, "kind": "start", "t": int(clock.UnixNano()), "version": "test-1.0"},
		{"v": 1, "kind": "rules", "t": int(t0.Add(-500 * time.Millisecond).UnixNano()),
			"file": "rules/library/lost-final-ack.yaml", "sha256": rulesSHA, "experiment": "lost-final-ack"},
	}
	for i, f := range fs {
		if i == 5 {
			want = append(want, map[string]any{"v": 1, "kind": "toggle", "t": int(t0.Add(6500 * time.Microsecond).UnixNano()),
				"rule": "dup-fin", "enabled": false},
				map[string]any{"v": 1, "kind": "mitigation", "t": int(t0.Add(6600 * time.Microsecond).UnixNano()),
					"name": "timewait-guard", "on": true})
		}
		want = append(want, f.json)
	}
	want = append(want, map[string]any{"v": 1, "kind": "summary", "t": int(clock.UnixNano()), "drops": 2, "packets": 10, "lost": 0, "failed": 0})
	got := readJSONL(t, jsonPath)
	if len(got) != len(want) {
		t.Errorf("%d records, want %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		name := fmt.Sprint(want[i]["kind"])
		if i >= 2 && i-2 < len(fs)+1 {
			name = fmt.Sprintf("record %d (%v)", i, want[i]["kind"])
		}
		if diff := cmp.Diff(want[i], got[i]); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
}

// TestJSONGolden pins the exact bytes of the log: field order, spelling
// and escaping, which SCHEMA.md documents. Run with -update after a
// deliberate format change (and bump SchemaVersion if a field changed
// meaning).
func TestJSONGolden(t *testing.T) {
	jsonPath, _, _ := writeFixtures(t, fixtures(t))
	got, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "verdicts.golden.jsonl")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(strings.Split(string(want), "\n"), strings.Split(string(got), "\n")); diff != "" {
		t.Errorf("log differs from %s (-want +got):\n%s", golden, diff)
	}
}

// frame is one pcapng packet as read back.
type frame struct {
	Time    time.Time
	CapLen  int
	Len     int
	Data    []byte
	Comment []string
	Drops   uint64
}

// readPcap reads a capture back with gopacket's pcapng reader and checks
// its section and interface.
func readPcap(t *testing.T, name string, snapLen int) (frames []frame, stats pcapgo.NgInterfaceStatistics) {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	nstats := 0
	r, err := pcapgo.NewNgReader(f, pcapgo.NgReaderOptions{StatisticsCallback: func(_ int, s pcapgo.NgInterfaceStatistics) {
		stats = s
		nstats++
	}})
	if err != nil {
		t.Fatalf("pcapng reader: %v", err)
	}
	if got := r.SectionInfo().Application; got != "closeduel test-1.0" {
		t.Errorf("shb_userappl = %q, want %q", got, "closeduel test-1.0")
	}
	if r.NInterfaces() != 1 {
		t.Fatalf("%d interfaces, want 1", r.NInterfaces())
	}
	intf, err := r.Interface(0)
	if err != nil {
		t.Fatal(err)
	}
	if intf.Name != InterfaceName || intf.LinkType != layers.LinkTypeRaw || intf.SnapLength != uint32(snapLen) {
		t.Errorf("interface %q link %v snaplen %d, want %q %v %d", intf.Name, intf.LinkType, intf.SnapLength,
			InterfaceName, layers.LinkTypeRaw, snapLen)
	}
	for {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("frame %d: %v", len(frames)+1, err)
		}
		fr := frame{Time: ci.Timestamp, CapLen: ci.CaptureLength, Len: ci.Length, Data: data, Comment: opts.Comments}
		if opts.DropCount != nil {
			fr.Drops = *opts.DropCount
		}
		frames = append(frames, fr)
	}
	if nstats != 1 {
		t.Errorf("%d interface statistics blocks, want 1", nstats)
	}
	return frames, stats
}

func TestPcapRoundTrip(t *testing.T) {
	fs := fixtures(t)
	_, pcapPath, _ := writeFixtures(t, fs)
	got, stats := readPcap(t, pcapPath, fixtureSnapLen)
	var want []frame
	for _, f := range fs {
		want = append(want, frame{
			Time:    f.ev.Left,
			CapLen:  f.capLen,
			Len:     max(f.ev.OrigLen, len(f.ev.Data)),
			Data:    f.ev.Data[:f.capLen],
			Comment: []string{f.comment},
		})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("frames (-want +got):\n%s", diff)
	}
	if stats.PacketsReceived != 10 || stats.PacketsDropped != 0 || !stats.StartTime.Equal(clock) || !stats.EndTime.Equal(clock) {
		t.Errorf("interface statistics %+v, want 10 received, 0 dropped, start and end %v", stats, clock)
	}
}

// TestTshark checks that Wireshark's own reader shows the verdicts as
// frame comments, as users will read them.
func TestTshark(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tshark is not installed; CI must install it (Debian package tshark)")
		}
		t.Skip("skipped: tshark not installed")
	}
	fs := fixtures(t)
	_, pcapPath, _ := writeFixtures(t, fs)
	cmd := exec.Command(tshark, "-r", pcapPath, "-T", "fields", "-e", "frame.comment", "-e", "frame.len", "-e", "frame.cap_len", "-e", "ip.src")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir()) // no user profile
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.Bytes())
	}
	var want []string
	for _, f := range fs {
		src := ""
		if len(f.ev.Data) >= 20 && f.ev.Data[0]>>4 == 4 {
			src = fmt.Sprintf("%d.%d.%d.%d", f.ev.Data[12], f.ev.Data[13], f.ev.Data[14], f.ev.Data[15])
		}
		want = append(want, fmt.Sprintf("%s\t%d\t%d\t%s", f.comment, max(f.ev.OrigLen, len(f.ev.Data)), f.capLen, src))
	}
	t.Logf("tshark -r FILE -T fields -e frame.comment -e frame.len -e frame.cap_len -e ip.src:\n%s", out)
	got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tshark -T fields -e frame.comment ... (-want +got):\n%s", diff)
	}
}
