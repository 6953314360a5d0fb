package analysis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/closeduel/closeduel/tcpstate"
	"gopkg.in/yaml.v3"
)

// RunInfo is what the analysis knows about the lab run the inputs come
// from: read from the run directory's run.yaml.
type RunInfo struct {
	// Dir is the run directory.
	Dir string `json:"dir,omitempty"`
	// Experiment is the run.yaml "experiment" key, when present.
	Experiment string `json:"experiment,omitempty"`
	// WorkloadStart and WorkloadEnd are when the client workload ran
	// (zero when run.yaml does not say).
	WorkloadStart time.Time `json:"workload_start,omitzero"`
	WorkloadEnd   time.Time `json:"workload_end,omitzero"`
	// Stacks names the stack of each role's address (the lab's client is
	// Linux, its device lwIP or Linux), read from topology.client_addr,
	// topology.device_addr and device.kind: the tracker takes each role's
	// TIME_WAIT length and RST handling from it, unless Config.Stack says.
	Stacks map[string]string `json:"stacks,omitempty"`
}

// stackOf returns a Config.Stack from the run's Stacks, nil when it has
// none.
func (ri *RunInfo) stackOf() func(netip.AddrPort) tcpstate.Stack {
	if ri == nil || len(ri.Stacks) == 0 {
		return nil
	}
	m := make(map[netip.Addr]tcpstate.Stack, len(ri.Stacks))
	for a, name := range ri.Stacks {
		addr, err := netip.ParseAddr(a)
		st, ok := tcpstate.ParseStack(name)
		if err == nil && ok {
			m[addr] = st
		}
	}
	return func(ap netip.AddrPort) tcpstate.Stack { return m[ap.Addr().Unmap()] }
}

// runStacks reads the roles' stacks from a lab run.yaml.
func runStacks(raw map[string]any) map[string]string {
	topo, _ := raw["topology"].(map[string]any)
	dev, _ := raw["device"].(map[string]any)
	if topo == nil {
		return nil
	}
	out := map[string]string{}
	add := func(key, stack string) {
		s, _ := topo[key].(string)
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if _, ok := tcpstate.ParseStack(stack); ok {
			out[p.Addr().String()] = stack
		}
	}
	add("client_addr", "linux")
	if dev != nil {
		if kind, ok := dev["kind"].(string); ok {
			add("device_addr", kind)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// RunFile is the metadata file a lab run leaves in its directory.
const RunFile = "run.yaml"

// ReadRun reads dir/run.yaml. It reads the keys workload_start and
// workload_end (RFC 3339 text or integer ns since the Unix epoch),
// experiment, and the roles' stacks (topology.client_addr,
// topology.device_addr, device.kind), and ignores every other key.
func ReadRun(dir string) (*RunInfo, error) {
	path := filepath.Join(dir, RunFile)
	b, err := readSmallFile(path, maxRunFile)
	if err != nil {
		return nil, fmt.Errorf("analysis: run metadata: %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("analysis: %s: %w", path, err)
	}
	ri := &RunInfo{Dir: dir, Stacks: runStacks(raw)}
	if e, ok := raw["experiment"].(string); ok {
		ri.Experiment = e
	}
	for key, dst := range map[string]*time.Time{"workload_start": &ri.WorkloadStart, "workload_end": &ri.WorkloadEnd} {
		v, ok := raw[key]
		if !ok || v == nil {
			continue
		}
		t, err := parseRunTime(v)
		if err != nil {
			return nil, fmt.Errorf("analysis: %s: %s: %w", path, key, err)
		}
		*dst = t
	}
	return ri, nil
}

// maxRunFile bounds run.yaml: a lab run writes a few kB.
const maxRunFile = 1 << 20

// readSmallFile reads a regular file of at most limit bytes. It opens
// without waiting (a FIFO would wait for a writer) and refuses anything
// else (a device such as /dev/zero never ends).
func readSmallFile(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (mode %s)", path, st.Mode())
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: more than %d bytes", path, limit)
	}
	return b, nil
}

func parseRunTime(v any) (time.Time, error) {
	switch x := v.(type) {
	case time.Time: // yaml.v3 decodes unquoted timestamps itself
		return x, nil
	case int:
		return time.Unix(0, int64(x)), nil
	case int64:
		return time.Unix(0, x), nil
	case uint64:
		return time.Unix(0, int64(x)), nil
	case float64:
		return time.Unix(0, int64(x)), nil
	case string:
		if n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64); err == nil {
			return time.Unix(0, n), nil
		}
		t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(x))
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor integer ns", x)
		}
		return t, nil
	}
	return time.Time{}, fmt.Errorf("unexpected value %v", v)
}

// AnalyzeRun analyses a run directory as `closeduel analyze --run DIR`
// does: its run.yaml (ReadRun) and its inputs (RunInputs).
func AnalyzeRun(ctx context.Context, dir string) (*Report, error) {
	run, err := ReadRun(dir)
	if err != nil {
		return nil, err
	}
	paths, err := RunInputs(dir)
	if err != nil {
		return nil, err
	}
	return Analyze(ctx, Config{Run: run}, paths)
}

// RunInputs lists the inputs a run directory holds: its *.pcap, *.pcapng
// and *.jsonl files, sorted by name.
func RunInputs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("analysis: run directory: %w", err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		switch filepath.Ext(e.Name()) {
		case ".pcap", ".pcapng", ".jsonl":
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil, errors.New("analysis: " + dir + ": no .pcap, .pcapng or .jsonl file in the run directory")
	}
	return out, nil
}
