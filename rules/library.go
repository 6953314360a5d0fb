package rules

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

//go:embed library/*.yaml
var library embed.FS

// Library returns the shipped experiments: the files of rules/library,
// one NAME.yaml per experiment, at the root of the returned FS.
func Library() fs.FS {
	sub, err := fs.Sub(library, "library")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	return sub
}

// LibraryNames returns the names of the shipped experiments, sorted.
func LibraryNames() []string {
	entries, _ := fs.ReadDir(Library(), ".")
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".yaml"); ok && !e.IsDir() {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// LoadLibrary parses the shipped experiment called name (with or without
// ".yaml"); its File.Path is "library/NAME.yaml".
func LoadLibrary(name string) (*File, error) {
	name = strings.TrimSuffix(name, ".yaml")
	data, err := fs.ReadFile(Library(), name+".yaml")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("rules: no shipped experiment %q%s; `closeduel rules` lists them", name, didYouMean(name, LibraryNames()))
	}
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	return Parse(path.Join("library", name+".yaml"), data)
}
