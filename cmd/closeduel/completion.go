package main

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"
)

// completionCommand is `closeduel completion SHELL`: prints the script that
// makes SHELL complete closeduel's commands and flags.
func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print the shell completion script for bash, zsh or fish",
		ArgsUsage: "bash | zsh | fish",
		Description: `Prints a script that completes closeduel's commands and flags. bash and zsh
ask closeduel itself for the candidates (--generate-bash-completion), so they
follow the binary you run; fish gets a static list.` + examples(
			"source <(closeduel completion bash)",
			"closeduel completion bash > /etc/bash_completion.d/closeduel",
			"closeduel completion zsh > \"${fpath[1]}/_closeduel\"",
			"closeduel completion fish > ~/.config/fish/completions/closeduel.fish",
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return &exitError{code: 2, err: fmt.Errorf("completion: say which shell: %s", c.Command.ArgsUsage)}
			}
			return writeCompletion(c.App.Writer, c.Args().First())
		},
	}
}

// writeCompletion writes the completion script of one shell.
func writeCompletion(w io.Writer, shell string) error {
	switch shell {
	case "bash":
		_, err := io.WriteString(w, bashCompletion)
		return err
	case "zsh":
		_, err := io.WriteString(w, zshCompletion)
		return err
	case "fish":
		s, err := newApp().ToFishCompletion()
		if err != nil {
			return fmt.Errorf("completion: %w", err)
		}
		_, err = io.WriteString(w, s)
		return err
	}
	return &exitError{code: 2, err: fmt.Errorf("completion: unknown shell %q: want bash, zsh or fish", shell)}
}

// bashCompletion asks the binary for the words that may follow the
// command line so far; it needs no bash-completion package.
const bashCompletion = `# closeduel bash completion: source <(closeduel completion bash)
_closeduel() {
  local cur="${COMP_WORDS[COMP_CWORD]}" opts
  if [[ "$cur" == -* ]]; then
    opts=$("${COMP_WORDS[@]:0:COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)
  else
    opts=$("${COMP_WORDS[@]:0:COMP_CWORD}" --generate-bash-completion 2>/dev/null)
  fi
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -o bashdefault -o default -F _closeduel closeduel
`

// zshCompletion does the same for zsh.
const zshCompletion = `#compdef closeduel
# closeduel zsh completion: closeduel completion zsh > "${fpath[1]}/_closeduel"
_closeduel() {
  local -a opts
  local cur=${words[-1]}
  if [[ "$cur" == -* ]]; then
    opts=("${(@f)$(${words[@]:0:#words[@]-1} ${cur} --generate-bash-completion 2>/dev/null)}")
  else
    opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion 2>/dev/null)}")
  fi
  if [[ "${opts[1]}" != "" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}
# Autoloaded from $fpath (compinit), this file is _closeduel's body: the
# first call defines the function above and must also complete. Sourced,
# it registers the function.
if [[ "${funcstack[1]}" == _closeduel ]]; then
  _closeduel "$@"
else
  compdef _closeduel closeduel
fi
`
