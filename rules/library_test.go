package rules

import (
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
