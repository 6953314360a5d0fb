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
