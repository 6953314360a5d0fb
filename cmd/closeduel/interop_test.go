package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/closeduel/closeduel/internal/roottest"
)

// The README's queries on the verdict log, run here as documented.
const (
	// jqQuery counts verdicts by action.
	jqQuery = `jq -s -c 'map(select(.kind == "verdict")) | group_by(.action) | map({action: .[0].action, packets: length})' verdicts.jsonl`
	// duckdbQuery does the same in DuckDB.
	duckdbQuery = `SELECT action, count(*) AS packets FROM read_json_auto('verdicts.jsonl') WHERE kind = 'verdict' GROUP BY action ORDER BY action`
)

// goldenLog is a verdict log as the Writer writes it, byte for byte
// (verdictlog's golden test keeps it so).
const goldenLog = "../../verdictlog/testdata/verdicts.golden.jsonl"

// verdictsByAction counts the log's verdict records by action, in Go.
func verdictsByAction(t *testing.T, path string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct{ Kind, Action string }
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Kind == "verdict" {
			m[rec.Action]++
		}
	}
	if len(m) < 2 {
		t.Fatalf("%s: %d actions; the check needs a log with several", path, len(m))
	}
	return m
}

// logInDir copies the golden log to dir/verdicts.jsonl, the name the
// README's queries use.
func logInDir(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(goldenLog)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "verdicts.jsonl"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func readmeHas(t *testing.T, text string) {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), text) {
		t.Errorf("README.md does not show the tested query %s", text)
	}
}

func TestVerdictLogInJq(t *testing.T) {
	readmeHas(t, jqQuery)
	roottest.RequireTools(t, "jq")
	dir := logInDir(t)
	cmd := exec.Command("sh", "-c", jqQuery)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", jqQuery, err)
	}
	var rows []struct {
		Action  string
		Packets int
	}
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("jq output %q: %v", out, err)
	}
	got := map[string]int{}
	for _, r := range rows {
		got[r.Action] = r.Packets
	}
	if diff := cmp.Diff(verdictsByAction(t, goldenLog), got); diff != "" {
		t.Fatalf("jq's counts (-want +got):\n%s", diff)
	}
}

// TestVerdictLogInDuckDB runs the README's DuckDB query with the duckdb
// CLI, or with DuckDB's Node.js package (npm install -g @duckdb/node-api),
// where either is installed.
func TestVerdictLogInDuckDB(t *testing.T) {
	readmeHas(t, duckdbQuery)
	dir := logInDir(t)
	var cmd *exec.Cmd
	if _, err := exec.LookPath("duckdb"); err == nil {
		cmd = exec.Command("duckdb", "-csv", "-noheader", "-c", duckdbQuery)
	} else if root := npmGlobalRoot(); root != "" {
		script := filepath.Join(dir, "query.cjs")
		os.WriteFile(script, []byte(duckdbNode), 0o644)
		cmd = exec.Command("node", script, duckdbQuery)
		cmd.Env = append(os.Environ(), "NODE_PATH="+root)
	} else {
		t.Skip("DuckDB not installed: neither the duckdb CLI nor npm's @duckdb/node-api (npm install -g @duckdb/node-api)")
	}
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("duckdb: %v\n%s", err, out)
	}
	want := verdictsByAction(t, goldenLog)
	var lines []string
	for a, n := range want {
		lines = append(lines, fmt.Sprintf("%s,%d", a, n))
	}
	sort.Strings(lines)
	if got := strings.Split(strings.TrimSpace(strings.ReplaceAll(string(out), "\t", ",")), "\n"); !cmp.Equal(lines, got) {
		t.Fatalf("DuckDB's counts %q, want %q", got, lines)
	}
}

// npmGlobalRoot returns npm's global module directory when DuckDB's
// Node.js package is installed there, else "".
func npmGlobalRoot() string {
	if _, err := exec.LookPath("node"); err != nil {
		return ""
	}
	out, err := exec.Command("npm", "root", "-g").Output()
	if err != nil {
		return ""
	}
	root := strings.TrimSpace(string(out))
	if _, err := os.Stat(filepath.Join(root, "@duckdb", "node-api")); err != nil {
		return ""
	}
	return root
}

// duckdbNode runs one query with @duckdb/node-api and prints tab-separated rows.
const duckdbNode = `const { DuckDBInstance } = require('@duckdb/node-api');
(async () => {
  const con = await (await DuckDBInstance.create(':memory:')).connect();
  const r = await con.runAndReadAll(process.argv[2]);
  for (const row of r.getRowsJS()) console.log(row.map(String).join('\t'));
})().catch(e => { console.error(String(e)); process.exit(1); });
`
