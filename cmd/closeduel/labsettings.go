package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/closeduel/closeduel/lab"
	"github.com/closeduel/closeduel/rules"
)

// labSettingFlags are the `closeduel lab` flags a rule file's lab:
// section can set (rules.LabSetting.Flag), and the device.
var labSettingFlags = []string{"device", "close", "size", "pool", "busy-close", "time-wait", "schedule", "concurrency",
	"client-close", "timeout", "ports", "random-ports", "linger0", "quiet"}

// sysctlFlags are the flags that set one client sysctl each.
var sysctlFlags = map[string]string{"rfc1337": "net.ipv4.tcp_rfc1337", "tw-reuse": "net.ipv4.tcp_tw_reuse",
	"timestamps": "net.ipv4.tcp_timestamps", "fin-timeout": "net.ipv4.tcp_fin_timeout"}

// labValues are a lab run's bench settings as flag values, each with
// where it came from: the flag's default, the rule file's lab: section, a
// flag given on the command line, or a caller (the matrix) overriding it.
type labValues struct {
	val, src       map[string]string
	sysctl, sysSrc map[string]string
}

// mergeLabSettings takes the flags' defaults, then the rule file's lab:
// section (f may be nil), then the flags given on the command line.
func mergeLabSettings(c *cli.Context, f *rules.File) *labValues {
	v := &labValues{val: map[string]string{}, src: map[string]string{}, sysctl: map[string]string{}, sysSrc: map[string]string{}}
	for _, name := range labSettingFlags {
		v.val[name], v.src[name] = flagText(c, name), "default"
	}
	if f != nil {
		for _, s := range f.Lab {
			pos := fmt.Sprintf("%s:%d:%d", f.Path, s.Line, s.Column)
			if s.Flag == "sysctl" {
				k, val, _ := strings.Cut(s.Value, "=")
				v.sysctl[k], v.sysSrc[k] = val, pos
				continue
			}
			if !c.IsSet(s.Flag) {
				v.val[s.Flag], v.src[s.Flag] = s.Value, pos
			}
		}
	}
	for _, name := range labSettingFlags {
		if c.IsSet(name) {
			v.src[name] = "flag"
		}
	}
	for flag, key := range sysctlFlags {
		if c.IsSet(flag) {
			v.sysctl[key], v.sysSrc[key] = c.String(flag), "flag --"+flag
		}
	}
	for _, kv := range c.StringSlice("sysctl") {
		k, val, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok {
			v.sysctl[k], v.sysSrc[k] = "", "flag --sysctl" // config says what is wrong
			continue
		}
		v.sysctl[k], v.sysSrc[k] = strings.TrimSpace(val), "flag --sysctl"
	}
	return v
}

// set overrides one setting (a flag name or "sysctl KEY") with source src.
func (v *labValues) set(name, value, src string) {
	if key, ok := strings.CutPrefix(name, "sysctl "); ok {
		v.sysctl[key], v.sysSrc[key] = value, src
		return
	}
	v.val[name], v.src[name] = value, src
}

// flagText renders a flag's value as the flag is spelled.
func flagText(c *cli.Context, name string) string {
	switch x := c.Value(name).(type) {
	case time.Duration:
		return x.String()
	case nil:
		return ""
	default:
		return fmt.Sprint(x)
	}
}

// settings lists every setting with its source, for run.yaml.
func (v *labValues) settings() []lab.Setting {
	var out []lab.Setting
	for _, name := range labSettingFlags {
		out = append(out, lab.Setting{Key: name, Value: v.val[name], Source: v.src[name]})
	}
	keys := make([]string, 0, len(v.sysctl))
	for k := range v.sysctl {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, lab.Setting{Key: "sysctl " + k, Value: v.sysctl[k], Source: v.sysSrc[k]})
	}
	return out
}

// config turns the settings into a lab.Config (the bench part; the
// caller fills in names, rules and output).
func (v *labValues) config() (lab.Config, error) {
	cfg := lab.Config{Sysctls: map[string]string{}, Settings: v.settings()}
	fail := func(name string, err error) (lab.Config, error) {
		return cfg, fmt.Errorf("lab: %s %q (from %s): %w", name, v.val[name], v.src[name], err)
	}
	var err error
	if cfg.Device, err = lab.ParseDeviceKind(v.val["device"]); err != nil {
		return fail("device", err)
	}
	if cfg.Close, err = lab.ParseCloseMode(v.val["close"]); err != nil {
		return fail("close", err)
	}
	if cfg.Schedule, err = lab.ParseSchedule(v.val["schedule"]); err != nil {
		return fail("schedule", err)
	}
	ints := map[string]*int{"size": &cfg.Size, "pool": &cfg.Pool, "concurrency": &cfg.Concurrency}
	for name, dst := range ints {
		if *dst, err = strconv.Atoi(v.val[name]); err != nil {
			return fail(name, err)
		}
	}
	durs := map[string]*time.Duration{"time-wait": &cfg.TimeWait, "timeout": &cfg.Timeout, "quiet": &cfg.Quiet}
	for name, dst := range durs {
		if *dst, err = time.ParseDuration(v.val[name]); err != nil {
			return fail(name, err)
		}
	}
	bools := map[string]*bool{"random-ports": &cfg.RandomPorts, "linger0": &cfg.Linger0, "busy-close": &cfg.BusyClose}
	for name, dst := range bools {
		if *dst, err = strconv.ParseBool(v.val[name]); err != nil {
			return fail(name, err)
		}
	}
	switch v.val["client-close"] {
	case "head":
	case "eof":
		cfg.WaitEOF = true
	default:
		return fail("client-close", fmt.Errorf("want head or eof"))
	}
	cfg.PortRange = v.val["ports"]
	// Zero means "none" on the command line; lab.Config says so with a
	// negative value.
	if cfg.Pool == 0 {
		cfg.Pool = -1
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = -1
	}
	if cfg.Quiet == 0 {
		cfg.Quiet = -1
	}
	for k, val := range v.sysctl {
		if val == "" && strings.HasPrefix(v.sysSrc[k], "flag --sysctl") {
			return cfg, fmt.Errorf("lab: --sysctl %q: want KEY=VALUE", k)
		}
		cfg.Sysctls[k] = val
	}
	return cfg, nil
}
