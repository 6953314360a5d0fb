package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/urfave/cli/v2"

	"github.com/closeduel/closeduel/lab"
	"github.com/closeduel/closeduel/rules"
)

// TestLabSettingsMerge: the flags' defaults, then the rule file's lab:
// section, then the flags given; each setting says where it came from.
func TestLabSettingsMerge(t *testing.T) {
	f, err := rules.Parse("x.yaml", []byte(`experiment: x
about: y
rules: []
lab:
  device: { pool: 8, close: wait }
  workload: { schedule: 3x1s, ports: 40000-40001, random-ports: true }
  sysctls: { net.ipv4.tcp_rfc1337: 1, net.ipv4.tcp_tw_reuse: 0 }
  quiet: 20s
`))
	if err != nil {
		t.Fatal(err)
	}
	cmd := labCommand()
	var got lab.Config
	cmd.Action = func(c *cli.Context) error {
		var err error
		got, err = mergeLabSettings(c, f).config()
		return err
	}
	app := &cli.App{Commands: []*cli.Command{cmd}}
	if err := app.Run([]string{"closeduel", "lab", "--quiet", "5s", "--rfc1337", "0", "--size", "64"}); err != nil {
		t.Fatal(err)
	}
	if got.Pool != 8 || got.Close != lab.CloseWaitClient || got.Schedule.String() != "3x1s" || got.PortRange != "40000-40001" ||
		!got.RandomPorts || got.Quiet != 5*time.Second || got.Size != 64 || got.Timeout != lab.DefaultTimeout {
		t.Errorf("config %+v", got)
	}
	if diff := cmp.Diff(map[string]string{"net.ipv4.tcp_rfc1337": "0", "net.ipv4.tcp_tw_reuse": "0"}, got.Sysctls); diff != "" {
		t.Errorf("sysctls (-want +got):\n%s", diff)
	}
	src := map[string]string{}
	for _, s := range got.Settings {
		src[s.Key] = s.Value + " from " + s.Source
	}
	for key, want := range map[string]string{
		"pool":                         "8 from x.yaml:5:19",
		"close":                        "wait from x.yaml:5:29",
		"schedule":                     "3x1s from x.yaml:6:25",
		"quiet":                        "5s from flag",
		"size":                         "64 from flag",
		"timeout":                      "10s from default",
		"device":                       "lwip from default",
		"sysctl net.ipv4.tcp_rfc1337":  "0 from flag --rfc1337",
		"sysctl net.ipv4.tcp_tw_reuse": "0 from x.yaml:7:62",
	} {
		if src[key] != want {
			t.Errorf("%s: %q, want %q", key, src[key], want)
		}
	}
}
