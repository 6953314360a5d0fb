package rules

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-cmp/cmp"
	"io/fs"
	"strings"
	"testing"
)

func TestLibraryFilesParse(t *testing.T) {
	names := LibraryNames()
	if len(names) < 9 {
		t.Fatalf("library holds %d experiments, want at least 9: %v", len(names), names)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			f, err := LoadLibrary(name)
			if err != nil {
				t.Fatal(err)
			}
			if f.Experiment != name {
				t.Errorf("experiment %q lives in %s.yaml: names must match", f.Experiment, name)
			}
			if len(f.About) < 40 || !strings.HasSuffix(f.About, ".") {
				t.Errorf("about %q: want a sentence that says what the experiment shows", f.About)
			}
			for _, l := range f.Describe() {
				t.Log(l)
			}
		})
	}
	if _, err := fs.Stat(Library(), "observe-only.yaml"); err != nil {
		t.Error(err)
	}
}

// TestDescribeLibraryGolden keeps what `closeduel check` says of every
// shipped experiment in testdata/library.golden (-update rewrites it).
func TestDescribeLibraryGolden(t *testing.T) {
	var b strings.Builder
	for _, name := range LibraryNames() {
		f, err := LoadLibrary(name)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s: %s\n", f.Experiment, f.About)
		for _, l := range f.Describe() {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	golden := filepath.Join("testdata", "library.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), b.String()); diff != "" {
		t.Errorf("descriptions (-golden +now):\n%s", diff)
	}
}
