package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/closeduel/closeduel/control"
)

// unitRoot lays out a filesystem root for systemd-analyze verify --root:
// the unit as installed, the binary it runs, /bin/kill and systemd's own
// units (for the targets it names).
func unitRoot(t *testing.T, unitText string) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"usr/local/bin", "usr/bin", "usr/lib/systemd", "etc/systemd/system", "etc/closeduel"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	copies := [][2]string{
		{buildBinary(t), "usr/local/bin/closeduel"},
		{"/usr/bin/kill", "usr/bin/kill"},
		{"/bin/sh", "usr/bin/sh"},
		{"../../packaging/closeduel.env", "etc/closeduel/closeduel.env"},
	}
	for _, c := range copies {
		if out, err := exec.Command("cp", c[0], filepath.Join(root, c[1])).CombinedOutput(); err != nil {
			t.Fatalf("cp %s: %v %s", c[0], err, out)
		}
	}
	if out, err := exec.Command("cp", "-r", "/lib/systemd/system", filepath.Join(root, "usr/lib/systemd/")).CombinedOutput(); err != nil {
		t.Fatalf("copy systemd units: %v %s", err, out)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/systemd/system/closeduel.service"), []byte(unitText), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestSystemdUnitVerifies runs systemd-analyze verify on the unit as
// installed (no output, exit 0), and checks that it fails on a broken copy.
func TestSystemdUnitVerifies(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-analyze is needed (apt-get install systemd; make deps-test does)")
		}
		t.Skip("systemd-analyze not installed (Debian package systemd)")
	}
	unit, err := os.ReadFile("../../packaging/closeduel.service")
	if err != nil {
		t.Fatal(err)
	}
	verify := func(text string) (string, error) {
		root := unitRoot(t, text)
		out, err := exec.Command("systemd-analyze", "verify", "--root="+root, "/etc/systemd/system/closeduel.service").CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if out, err := verify(string(unit)); err != nil || out != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	broken := strings.Replace(string(unit), "ProtectSystem=", "ProtectSystm=", 1)
	if out, _ := verify(broken); !strings.Contains(out, "Unknown key 'ProtectSystm'") {
		t.Fatalf("systemd-analyze verify did not flag an unknown key: %q", out)
	}
}

// TestSystemdUnitSettings checks what the unit promises: after the bridge,
// restart on failure, settings from /etc/closeduel, two capabilities, and
// a runtime directory where closeduel ctl finds the control socket.
func TestSystemdUnitSettings(t *testing.T) {
	unit := readKeyValues(t, "../../packaging/closeduel.service")
	want := map[string]string{
		"BindsTo":                "sys-subsystem-net-devices-br0.device",
		"Restart":                "on-failure",
		"EnvironmentFile":        "/etc/closeduel/closeduel.env",
		"ExecStart":              "/usr/local/bin/closeduel run",
		"ExecReload":             "/bin/kill -HUP $MAINPID",
		"KillSignal":             "SIGTERM",
		"CapabilityBoundingSet":  "CAP_NET_ADMIN CAP_NET_RAW",
		"AmbientCapabilities":    "CAP_NET_ADMIN CAP_NET_RAW",
		"NoNewPrivileges":        "yes",
		"RuntimeDirectory":       "closeduel",
		"ConfigurationDirectory": "closeduel",
	}
	for k, v := range want {
		if got := strings.Join(unit[k], "|"); got != v {
			t.Errorf("%s=%q, want %q", k, got, v)
		}
	}
	if after := strings.Join(unit["After"], " "); !strings.Contains(after, "sys-subsystem-net-devices-br0.device") || !strings.Contains(after, "network-online.target") {
		t.Errorf("After=%q: want the bridge's device and network-online.target", after)
	}
	if p := control.DefaultPath(7); filepath.Dir(p) != "/run/"+unit["RuntimeDirectory"][0] {
		t.Errorf("closeduel ctl looks for %s, the unit's runtime directory is /run/%s", p, unit["RuntimeDirectory"][0])
	}
}

// TestEnvironmentFileNamesRealFlags: every variable of the example
// environment file is one a flag of closeduel run (or a global flag) reads,
// and its value parses.
func TestEnvironmentFileNamesRealFlags(t *testing.T) {
	env := readKeyValues(t, "../../packaging/closeduel.env")
	known := map[string]bool{}
	app := newApp()
	flags := append([]cli.Flag{}, app.Flags...)
	for _, c := range app.Commands {
		if c.Name == "run" {
			flags = append(flags, c.Flags...)
		}
	}
	for _, f := range flags {
		if e, ok := f.(interface{ GetEnvVars() []string }); ok {
			for _, v := range e.GetEnvVars() {
				known[v] = true
			}
		}
	}
	if len(env) < 5 {
		t.Fatalf("environment file has %d variables", len(env))
	}
	for k := range env {
		if !known[k] {
			t.Errorf("closeduel.env sets %s, which no flag of closeduel run reads", k)
		}
	}
	if _, err := newLogger(env["CLOSEDUEL_LOG_FORMAT"][0], env["CLOSEDUEL_LOG_LEVEL"][0], os.Stderr); err != nil {
		t.Error(err)
	}
	for _, h := range strings.Split(env["CLOSEDUEL_HOSTS"][0], ",") {
		if _, err := parseHost(h); err != nil {
			t.Error(err)
		}
	}
}

// TestSystemdUnitKeepsEarlierLogs runs the unit's ExecStartPre as systemd
// would (after its $$ and %% unescaping, with the environment file's
// variables): the previous start's logs are renamed, nothing else moves.
func TestSystemdUnitKeepsEarlierLogs(t *testing.T) {
	pre := readKeyValues(t, "../../packaging/closeduel.service")["ExecStartPre"]
	if len(pre) != 1 || !strings.HasPrefix(pre[0], "/bin/sh -c '") || !strings.HasSuffix(pre[0], "'") {
		t.Fatalf("ExecStartPre=%q: want one /bin/sh -c '...'", pre)
	}
	script := strings.TrimSuffix(strings.TrimPrefix(pre[0], "/bin/sh -c '"), "'")
	script = strings.NewReplacer("$$", "$", "%%", "%").Replace(script)
	dir := t.TempDir()
	for _, f := range []string{"verdicts.jsonl", "capture.pcapng", "other.txt"} {
		os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644)
	}
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Env = append(os.Environ(), "CLOSEDUEL_LOG="+filepath.Join(dir, "verdicts.jsonl"), "CLOSEDUEL_PCAP="+filepath.Join(dir, "capture.pcapng"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ExecStartPre: %v\n%s", err, out)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	var got []string
	for _, n := range names {
		got = append(got, filepath.Base(n))
	}
	if len(got) != 3 || got[1] != "other.txt" || !strings.HasPrefix(got[0], "capture.pcapng.20") || !strings.HasPrefix(got[2], "verdicts.jsonl.20") {
		t.Fatalf("after ExecStartPre: %q, want both logs renamed with their time and other.txt untouched", got)
	}
	// With no logs configured it does nothing and succeeds.
	cmd = exec.Command("/bin/sh", "-c", script)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ExecStartPre without logs: %v\n%s", err, out)
	}
}

// readKeyValues reads KEY=VALUE lines (systemd unit or environment file),
// skipping comments and section headers; repeated keys keep every value.
func readKeyValues(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: line %q is not KEY=VALUE", path, line)
		}
		m[k] = append(m[k], v)
	}
	return m
}
