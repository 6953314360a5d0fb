// Package rules is closeduel's rule language: it parses and validates
// experiment files (YAML, every error with file:line:column), says in plain
// words what each rule does, and runs them as an nfq.Decider that matches
// each queued segment against the rules, through the connection tracker in
// tcpstate, and fills in the engine's Decision. It also embeds the
// shipped experiment library. It needs no privileges; LANGUAGE.md next to
// this file is the reference for the language.
package rules
