package verdictlog

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "earlier.jsonl")
	if err := os.WriteFile(existing, []byte("earlier run\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fresh := func(name string) string { return filepath.Join(dir, name) }
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string
		gone    []string // files that must not exist after the failed Open
	}{
		{name: "no output", cfg: Config{}, wantErr: "verdictlog: no output: set JSONPath, PcapPath or both"},
		{name: "same file", cfg: Config{JSONPath: fresh("x"), PcapPath: fresh("x")}, wantErr: "are the same file"},
		{name: "negative snaplen", cfg: Config{JSONPath: fresh("a"), SnapLen: -1}, wantErr: "SnapLen -1 is outside 0..262144"},
		{name: "huge buffer", cfg: Config{JSONPath: fresh("a"), Buffer: MaxBuffer + 1}, wantErr: "Buffer 16777217 is outside"},
		{name: "existing json", cfg: Config{JSONPath: existing}, wantErr: "earlier.jsonl already exists; not overwriting"},
		{
			name: "existing pcap removes the new json", cfg: Config{JSONPath: fresh("new.jsonl"), PcapPath: existing},
			wantErr: "already exists", gone: []string{fresh("new.jsonl")},
		},
		{
			name: "missing directory", cfg: Config{JSONPath: fresh("b.jsonl"), PcapPath: fresh("nodir/b.pcapng")},
			wantErr: "no such file or directory", gone: []string{fresh("b.jsonl")},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := Open(tc.cfg)
			if err == nil {
				w.Close()
				t.Fatalf("Open succeeded, want an error containing %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q, want it to contain %q", err, tc.wantErr)
			}
			for _, name := range tc.gone {
				if _, err := os.Stat(name); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s left behind after the failed Open (stat: %v)", name, err)
				}
			}
			if b, err := os.ReadFile(existing); err != nil || string(b) != "earlier run\n" {
				t.Errorf("earlier log changed: %q, %v", b, err)
			}
		})
	}
	t.Run("overwrite", func(t *testing.T) {
		w, err := Open(Config{JSONPath: existing, Overwrite: true, Version: "v9"}, WithClock(func() time.Time { return clock }))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(existing)
		if !strings.HasPrefix(string(b), `{"v":1,"kind":"start"`) {
			t.Errorf("overwritten log starts %q", b)
		}
	})
	t.Run("write error at open", func(t *testing.T) {
		if _, err := os.Stat("/dev/full"); err != nil {
			t.Skip("no /dev/full")
		}
		_, err := Open(Config{JSONPath: "/dev/full", Overwrite: true})
		if err == nil || !strings.Contains(err.Error(), "verdictlog: write /dev/full: ") {
			t.Fatalf("Open on /dev/full: %v, want a write error", err)
		}
		if _, err := os.Stat("/dev/full"); err != nil {
			t.Fatalf("the failed Open removed /dev/full: %v", err)
		}
	})
}

var errBroken = errors.New("disk on fire")

// breakable fails every write once broken is set.
type breakable struct {
	w      io.Writer
	broken *atomic.Bool
}

func (b breakable) Write(p []byte) (int, error) {
	if b.broken.Load() {
		return 0, errBroken
	}
	return b.w.Write(p)
}

// TestWriteErrors breaks one file after Open: every event must end up
// Failed (none Written, none silently gone), Errors counts the failures,
// Close returns the first, and the other file still gets everything.
func TestWriteErrors(t *testing.T) {
	for _, broken := range []string{"json", "pcap"} {
		t.Run(broken, func(t *testing.T) {
			dir := t.TempDir()
			jsonPath, pcapPath := filepath.Join(dir, "v.jsonl"), filepath.Join(dir, "v.pcapng")
			var isBroken atomic.Bool
			w, err := Open(Config{JSONPath: jsonPath, PcapPath: pcapPath, Buffer: 64, Version: "test-1.0"},
				WithClock(func() time.Time { return clock }),
				withOutputWrapper(func(name string, w io.Writer) io.Writer {
					if name == broken {
						return breakable{w: w, broken: &isBroken}
					}
					return w
				}))
			if err != nil {
				t.Fatal(err)
			}
			isBroken.Store(true)
			fs := fixtures(t)
			for i := range fs {
				w.Record(&fs[i].ev)
			}
			err = w.Close()
			if !errors.Is(err, errBroken) {
				t.Fatalf("Close: %v, want %v", err, errBroken)
			}
			name := map[string]string{"json": jsonPath, "pcap": pcapPath}[broken]
			if !strings.Contains(err.Error(), "verdictlog: flush "+name+": ") {
				t.Errorf("Close error %q does not name the file", err)
			}
			st := w.Stats()
			if st.Recorded != 10 || st.Written != 0 || st.Failed != 10 || st.Lost != 0 || st.Errors == 0 {
				t.Errorf("Stats %+v, want 10 recorded, 10 failed, errors counted", st)
			}
			if err2 := w.Close(); err2 != err {
				t.Errorf("second Close: %v, want the first error again", err2)
			}
			switch broken {
			case "json":
				frames, _ := readPcap(t, pcapPath, DefaultSnapLen)
				if len(frames) != 10 {
					t.Errorf("pcapng holds %d frames, want 10", len(frames))
				}
			case "pcap":
				if got := len(readJSONL(t, jsonPath)); got != 12 {
					t.Errorf("JSON log holds %d records, want start, 10 events, summary", got)
				}
			}
		})
	}
}

// TestAfterClose checks that calls after Close change no file and only
// count as Late.
func TestAfterClose(t *testing.T) {
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "v.jsonl")
	w, err := Open(Config{JSONPath: jsonPath}, WithClock(func() time.Time { return clock }))
	if err != nil {
		t.Fatal(err)
	}
	ev := synEvent(t, 1)
	w.Record(&ev)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(jsonPath)
	w.Record(&ev)
	w.Toggled(t0, "x", true)
	w.RulesLoaded(t0, "f", "00", "e")
	w.Summary(map[string]uint64{"late": 1})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(jsonPath)
	if diff := cmp.Diff(string(before), string(after)); diff != "" {
		t.Errorf("log changed after Close (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(Stats{Recorded: 1, Written: 1, Late: 3}, w.Stats()); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
}
