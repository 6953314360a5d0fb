package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/closeduel/closeduel/nfq"
)

// Defaults of a lab run.
const (
	DefaultQuiet       = 30 * time.Second
	DefaultTimeout     = 10 * time.Second
	DefaultPool        = 5
	DefaultSize        = 32
	DefaultPort        = 80
	DefaultRunsDir     = "runs"
	DefaultExperiment  = "observe"
	readyTimeout       = 10 * time.Second
	defaultClientAddr  = "192.168.100.1/24"
	defaultDeviceAddr  = "192.168.100.99/24"
	pinnedCPU          = "0"
	realtimePriority   = "10"
	sysctlPortRange    = "net.ipv4.ip_local_port_range"
	sysctlRFC1337      = "net.ipv4.tcp_rfc1337"
	sysctlTWReuse      = "net.ipv4.tcp_tw_reuse"
	sysctlTimestamps   = "net.ipv4.tcp_timestamps"
	sysctlFinTimeout   = "net.ipv4.tcp_fin_timeout"
	sysctlSynRetries   = "net.ipv4.tcp_syn_retries"
	sysctlLinearTimeos = "net.ipv4.tcp_syn_linear_timeouts"
)

// ClientSysctls lists the client namespace's sysctls that matter to a
// close duel; the run record holds their values as the run had them.
var ClientSysctls = []string{sysctlPortRange, sysctlRFC1337, sysctlTWReuse, sysctlTimestamps, sysctlFinTimeout, sysctlSynRetries, sysctlLinearTimeos}

// Config describes one lab run. The zero value (plus Version) runs the
// default experiment: the lwIP device closing after send, the default
// schedule, 30 s of watching, observe-only.
type Config struct {
	// Name makes the namespace names unique (topology.Config.Name, at most
	// 8 characters); default "l<pid>".
	Name string
	// Experiment names the run directory: <RunsDir>/<UTC time>-<Experiment>.
	Experiment string
	// RunsDir is where run directories go (default "runs").
	RunsDir string
	// Command is the command line that started the run, for the record.
	Command []string
	// Version is closeduel's version, for the record.
	Version string
	// Seed is recorded and handed to the Inline middlebox (rules with
	// random choices); 0 picks one from the clock.
	Seed int64

	// Device is the stack that plays the device.
	Device DeviceKind
	// Close, Size: how the device ends a connection, and its response
	// body size (default 32).
	Close CloseMode
	Size  int
	// Pool is the lwIP device's pcb pool (default 5, as the ESP8266);
	// negative means no limit.
	Pool int
	// BusyClose makes the lwIP device take in none of the
	// acknowledgments of its own FIN, as a device too busy at close to
	// process them (the Linux device ignores it).
	BusyClose bool
	// TimeWait shortens the lwIP device's TIME_WAIT (0 keeps lwIP's
	// 2*TCP_MSL, 120 s).
	TimeWait time.Duration

	// Schedule is the workload's gaps (default DefaultSchedule).
	Schedule Schedule
	// Quiet is how long the bench keeps watching after the client stopped
	// (default 30 s; negative means not at all).
	Quiet time.Duration
	// Concurrency, Linger0, Timeout: see ClientConfig. Timeout defaults to
	// 10 s; negative leaves connects to the kernel.
	Concurrency int
	Linger0     bool
	Timeout     time.Duration
	// WaitEOF makes the client wait for the device's close before its own
	// (see ClientConfig.WaitEOF).
	WaitEOF bool
	// RandomPorts makes the client pick each local port at random in its
	// range (ClientConfig.RandomPorts).
	RandomPorts bool
	// PortRange narrows the client's local ports, "40000-40001", to force
	// 4-tuple reuse; "" keeps the kernel's range.
	PortRange string
	// Sysctls are set in the client namespace (sysctl -w key=value), e.g.
	// net.ipv4.tcp_tw_reuse=1.
	Sysctls map[string]string

	// Rules names the rule file the Inline middlebox runs (recorded only).
	Rules string
	// Settings lists every bench setting with where its value came from,
	// for the record (recorded only: the fields above are what runs).
	Settings []Setting
	// Expect is what the run should show (a rule file's expect: section
	// for this device); the run is checked against it at the end.
	Expect []Expectation
	// Inline is the middlebox on the bridge; nil runs the bench without
	// one (capture only).
	Inline Inline
	// Report writes report.txt; nil writes WriteReport (the analysis the
	// run fed, then the lab's section).
	Report func(w io.Writer, r *Result) error

	// Helper is the argv prefix that runs this program's hidden lab
	// subcommands ("client", "device-linux"); default [os.Executable(),
	// "lab"].
	Helper []string
	// CacheDir holds the compiled device program (default the user's
	// cache directory).
	CacheDir string
	// Gate, when set, is called once the bench is up and the device
	// answers, before the client starts; the run waits until it returns
	// (an error ends the run). The matrix starts every bench's workload
	// at once with it, so no bench's set-up or teardown competes with
	// another's workload.
	Gate func(context.Context) error
	// Progress receives the live progress line (nil: none). Live says it
	// is a terminal, which the line is redrawn on.
	Progress io.Writer
	Live     bool
	// Out receives the final report (nil: none).
	Out io.Writer

	// ClientAddr and DeviceAddr default to 192.168.100.1/24 and .99/24.
	ClientAddr, DeviceAddr netip.Prefix
}

func (c *Config) fill() error {
	if c.Experiment == "" {
		c.Experiment = DefaultExperiment
	}
	if strings.ContainsAny(c.Experiment, "/\\ ") {
		return fmt.Errorf("lab: bad experiment name %q", c.Experiment)
	}
	if c.RunsDir == "" {
		c.RunsDir = DefaultRunsDir
	}
	if c.Size == 0 {
		c.Size = DefaultSize
	}
	if c.Size < 0 || c.Size > 60000 {
		return fmt.Errorf("lab: response size %d out of range [0, 60000]", c.Size)
	}
	if c.Pool == 0 {
		c.Pool = DefaultPool
	}
	if c.TimeWait < 0 {
		return errors.New("lab: negative TIME_WAIT")
	}
	if len(c.Schedule) == 0 {
		s, err := ParseSchedule(DefaultSchedule)
		if err != nil {
			return err
		}
		c.Schedule = s
	}
	if c.Quiet == 0 {
		c.Quiet = DefaultQuiet
	}
	if c.Quiet < 0 {
		c.Quiet = 0
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 1
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Timeout < 0 {
		c.Timeout = 0
	}
	if c.PortRange != "" {
		if _, err := parsePortRange(c.PortRange); err != nil {
			return err
		}
	}
	for k := range c.Sysctls {
		if !strings.HasPrefix(k, "net.") {
			return fmt.Errorf("lab: sysctl %q is not a network sysctl (only net.* are per namespace)", k)
		}
	}
	if !c.ClientAddr.IsValid() {
		c.ClientAddr = netip.MustParsePrefix(defaultClientAddr)
	}
	if !c.DeviceAddr.IsValid() {
		c.DeviceAddr = netip.MustParsePrefix(defaultDeviceAddr)
	}
	if c.Seed == 0 {
		c.Seed = time.Now().UnixNano()
	}
	return nil
}

// parsePortRange turns "40000-40001" into the sysctl's "40000 40001".
func parsePortRange(s string) (string, error) {
	lo, hi, ok := strings.Cut(s, "-")
	if !ok {
		hi = lo
	}
	l, err1 := strconv.Atoi(strings.TrimSpace(lo))
	h, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if err1 != nil || err2 != nil || l < 1024 || h > 65535 || l > h {
		return "", fmt.Errorf("lab: bad port range %q (want LOW-HIGH within 1024-65535)", s)
	}
	return fmt.Sprintf("%d %d", l, h), nil
}

// clientSysctls returns the sysctls to set in the client namespace.
func (c *Config) clientSysctls() map[string]string {
	out := map[string]string{}
	for k, v := range c.Sysctls {
		out[k] = v
	}
	if c.PortRange != "" {
		out[sysctlPortRange], _ = parsePortRange(c.PortRange)
	}
	return out
}

// Inline is a middlebox the lab puts on its bridge for the whole run.
type Inline interface {
	// Start sits inline on env.Bridge in namespace env.NetNS and writes
	// its logs (verdicts.jsonl, capture.pcapng) into env.Dir; it returns
	// once packets flow through it.
	Start(ctx context.Context, env InlineEnv) error
	// Counts reports the segments it has decided and its verdicts by
	// action so far; it is called from another goroutine.
	Counts() (segments uint64, byAction map[string]uint64)
	// Stop releases what it holds, leaves the bridge and flushes its logs.
	Stop() error
}

// InlineEnv tells an Inline where to sit.
type InlineEnv struct {
	NetNS, Bridge, Dir string
	Client, Device     netip.Addr
	Seed               int64
	// Observe, when not nil, receives every event the Inline records,
	// as its verdict log does (the lab's live analysis).
	Observe nfq.Recorder
}
