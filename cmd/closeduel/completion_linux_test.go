package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestShellCompletion sources each shell's script in the real shell and
// asks it to complete, against the built binary.
func TestShellCompletion(t *testing.T) {
	bin := buildBinary(t)
	scripts := map[string]string{}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		var b bytes.Buffer
		if err := writeCompletion(&b, sh); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), sh)
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		scripts[sh] = p
	}
	t.Run("bash", func(t *testing.T) {
		for _, tc := range []struct{ words, cur, want string }{
			{words: "", cur: "ru", want: "run rules"},
			{words: "run", cur: "--ho", want: "--hook --host"},
			{words: "lab", cur: "d", want: "down"},
		} {
			script := `source "$1"; COMP_WORDS=("$2" ` + tc.words + ` "$3"); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _closeduel; echo "${COMPREPLY[*]}"`
			out, err := exec.Command("bash", "-c", script, "bash", scripts["bash"], bin, tc.cur).CombinedOutput()
			if err != nil {
				t.Fatalf("bash: %v\n%s", err, out)
			}
			if got := strings.TrimSpace(string(out)); got != tc.want {
				t.Errorf("complete %q %q: got %q, want %q", tc.words, tc.cur, got, tc.want)
			}
		}
	})
	t.Run("zsh", func(t *testing.T) {
		if _, err := exec.LookPath("zsh"); err != nil {
			t.Skip("zsh not installed: only the script's text is checked")
		}
		if out, err := exec.Command("zsh", "-n", scripts["zsh"]).CombinedOutput(); err != nil {
			t.Fatalf("zsh -n: %v\n%s", err, out)
		}
	})
	t.Run("fish", func(t *testing.T) {
		data, _ := os.ReadFile(scripts["fish"])
		for _, want := range []string{"complete -c closeduel", "-a 'run'", "-l log-format"} {
			if !strings.Contains(string(data), want) {
				t.Errorf("fish script lacks %q", want)
			}
		}
		if _, err := exec.LookPath("fish"); err != nil {
			t.Skip("fish not installed: only the script's text is checked")
		}
		if out, err := exec.Command("fish", "--no-execute", scripts["fish"]).CombinedOutput(); err != nil {
			t.Fatalf("fish --no-execute: %v\n%s", err, out)
		}
	})
}
