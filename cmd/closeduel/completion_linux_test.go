package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/closeduel/closeduel/internal/roottest"
)

// completionCases are what a user types and the candidates each shell
// must offer: subcommands, flags of a subcommand, a sub-subcommand.
var completionCases = []struct {
	line string // the command line, completed at its end
	want []string
}{
	{"closeduel ru", []string{"rules", "run"}},
	{"closeduel run --ho", []string{"--hook", "--host"}},
	{"closeduel lab d", []string{"down"}},
}

// zshHarness types a command line and a TAB into an interactive zsh in a
// pseudo-terminal (zsh/zpty) where compinit has run, and prints each
// candidate zsh's completion system adds, as "<match>CANDIDATE". compadd
// is wrapped by a function that asks the builtin for the matches (-O)
// before adding them as usual. Arguments: how the script is installed
// (fpath: as _closeduel in a directory of $fpath, autoloaded by compinit;
// source: sourced after compinit), the script's directory, the line.
// The markers are typed split ("<""end>") so that the terminal's echo of
// the setup lines never looks like output.
const zshHarness = `
zmodload zsh/zpty || exit 3
zpty z zsh -f -i
zpty -w z "PS1=''; PS2=''; RPS1=''"
if [[ $1 == fpath ]]; then
  zpty -w z "fpath=($2 \$fpath); autoload -Uz compinit; compinit -u -D"
else
  zpty -w z "autoload -Uz compinit; compinit -u -D; source $2/_closeduel"
fi
zpty -w z 'compadd() { local -a m; builtin compadd -O m "$@"; (( $#m )) && print -rl -- "<""match>"${^m}; builtin compadd "$@" }'
zpty -w z '_t() { zle complete-word; print -r -- "<""end>" }; zle -N _t; bindkey "^I" _t'
zpty -w -n z "$3"$'\t'
zpty -r -m z out '*<end>*'
print -r -- "$out"
zpty -d z
`

// TestShellCompletion installs each shell's script as docs/cli.md says and
// has the real shell complete command lines against the built binary
// (first on $PATH): bash calls the function its complete -F registered,
// zsh completes in a pseudo-terminal through compinit, fish answers
// complete -C. Every candidate set must be exactly the expected one.
func TestShellCompletion(t *testing.T) {
	bin := buildBinary(t)
	scripts := t.TempDir()
	for name, sh := range map[string]string{"closeduel.bash": "bash", "_closeduel": "zsh", "closeduel.fish": "fish"} {
		var b bytes.Buffer
		if err := writeCompletion(&b, sh); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(scripts, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The shells run in an empty directory (so no file matches a word),
	// with closeduel on $PATH as a user has it.
	work := t.TempDir()
	env := append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"), "TERM=xterm", "HOME="+work)
	shell := func(t *testing.T, argv ...string) string {
		t.Helper()
		roottest.RequireTools(t, argv[0])
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Dir, cmd.Env = work, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
		return string(out)
	}
	check := func(t *testing.T, line string, got, want []string) {
		t.Helper()
		slices.Sort(got)
		got = slices.Compact(got)
		if !slices.Equal(got, want) {
			t.Errorf("complete %q: got %q, want %q", line, got, want)
		}
	}

	t.Run("bash", func(t *testing.T) {
		// complete -p shows what the script registered; the function is
		// called as bash calls it, with COMP_WORDS and COMP_CWORD.
		const script = `source "$1"; complete -p closeduel; read -ra COMP_WORDS <<< "$2"; [[ $2 == *" " ]] && COMP_WORDS+=(""); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); COMP_LINE=$2; COMP_POINT=${#2}; $(complete -p closeduel | sed -n 's/.*-F \([^ ]*\) .*/\1/p'); printf '<match>%s\n' "${COMPREPLY[@]}"`
		for _, tc := range completionCases {
			out := shell(t, "bash", "--norc", "--noprofile", "-c", script, "bash", filepath.Join(scripts, "closeduel.bash"), tc.line)
			if !strings.Contains(out, "-F _closeduel closeduel") {
				t.Fatalf("the script does not register a function for closeduel: %q", out)
			}
			check(t, tc.line, matches(out), tc.want)
		}
	})
	t.Run("zsh", func(t *testing.T) {
		for _, how := range []string{"fpath", "source"} {
			for _, tc := range completionCases {
				out := shell(t, "zsh", "-f", "-c", zshHarness, "zsh", how, scripts, tc.line)
				check(t, how+": "+tc.line, matches(out), tc.want)
			}
		}
	})
	t.Run("fish", func(t *testing.T) {
		for _, tc := range completionCases {
			// complete -C prints "CANDIDATE<TAB>description" a line.
			out := shell(t, "fish", "--no-config", "-c", `source $argv[1]; complete -C $argv[2] | string replace -r '\t.*' '' | string replace -r '^' '<match>'`,
				filepath.Join(scripts, "closeduel.fish"), tc.line)
			check(t, tc.line, matches(out), tc.want)
		}
	})
}

// matches returns the candidates of a harness' output: the text after
// "<match>" on each line that has it.
func matches(out string) []string {
	var m []string
	for _, l := range strings.FieldsFunc(out, func(r rune) bool { return r == '\n' || r == '\r' }) {
		if _, c, ok := strings.Cut(l, "<match>"); ok {
			m = append(m, strings.TrimSpace(c))
		}
	}
	return m
}
