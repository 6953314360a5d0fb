package bridgehook

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"github.com/closeduel/closeduel/netns"
)

// ErrBridgeNetfilter is returned when bridged traffic does not pass
// iptables in the namespace.
var ErrBridgeNetfilter = errors.New("bridgehook: bridged traffic does not traverse iptables")

// Hook is an installed set of rules. Remove takes them out.
type Hook struct {
	cfg      Config
	families []string // binaries whose rules were installed
	vlan     bool     // the VLANTags table is (or may be half) installed
}

// CheckBridgeNetfilter checks that br_netfilter is loaded and that
// net.bridge.bridge-nf-call-iptables, -ip6tables and
// bridge-nf-filter-vlan-tagged are 1 in the namespace; the error says what
// to do otherwise. Without the last, a frame whose IP header still sits
// behind a VLAN tag when it reaches the bridge's netfilter hooks bypasses
// iptables, and with it the queue: the kernel moves only the outermost tag
// out of a received frame, so the inner 802.1Q tag of an 802.1ad (QinQ)
// frame is still there.
func CheckBridgeNetfilter(nsName string) error {
	return netns.Do(nsName, func() error {
		for _, k := range []string{"bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-filter-vlan-tagged"} {
			b, err := os.ReadFile("/proc/sys/net/bridge/" + k)
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("%w: the br_netfilter module is not loaded (run `modprobe br_netfilter`)", ErrBridgeNetfilter)
			}
			if err != nil {
				return fmt.Errorf("bridgehook: read net.bridge.%s: %w", k, err)
			}
			if strings.TrimSpace(string(b)) != "1" {
				return fmt.Errorf("%w: net.bridge.%s is %s (run `sysctl -w net.bridge.%s=1`)", ErrBridgeNetfilter, k, strings.TrimSpace(string(b)), k)
			}
		}
		return nil
	})
}

// Install checks br_netfilter and installs the chain and the jump for
// IPv4 and IPv6. On failure it removes what it installed.
func Install(ctx context.Context, cfg Config) (h *Hook, err error) {
	if err := CheckBridgeNetfilter(cfg.NetNS); err != nil {
		return nil, err
	}
	if cfg.VLANTags && cfg.Queues > 1 {
		return nil, ErrVLANTagsQueues
	}
	h = &Hook{cfg: cfg}
	defer func() {
		if err != nil {
			err = errors.Join(err, h.Remove())
			h = nil
		}
	}()
	if cfg.VLANTags {
		// The marks go in before the first packet can be queued.
		removeVLANTable(ctx, cfg.NetNS, cfg.VLANTable()) // a crashed run's
		h.vlan = true
		if err := nftScript(ctx, cfg.NetNS, cfg.vlanScript()); err != nil {
			return h, err
		}
	}
	for _, v6 := range []bool{false, true} {
		bin := "iptables"
		if v6 {
			bin = "ip6tables"
		}
		rules := cfg.queueRules(v6)
		if len(rules) == 0 {
			continue
		}
		// Leftovers of a crashed run with the same queue go first.
		removeChain(ctx, cfg.NetNS, bin, cfg.Chain())
		h.families = append(h.families, bin)
		if err := ipt(ctx, cfg.NetNS, bin, "-N", cfg.Chain()); err != nil {
			return h, err
		}
		for _, r := range rules {
			if err := ipt(ctx, cfg.NetNS, bin, append([]string{"-A"}, r...)...); err != nil {
				return h, err
			}
		}
		if err := ipt(ctx, cfg.NetNS, bin, append([]string{"-I"}, cfg.jumpArgs()...)...); err != nil {
			return h, err
		}
	}
	return h, nil
}

// Remove deletes the jump and the chain. It is safe to call twice.
func (h *Hook) Remove() error {
	if h == nil {
		return nil
	}
	var errs []error
	for _, bin := range h.families {
		errs = append(errs, removeChain(context.Background(), h.cfg.NetNS, bin, h.cfg.Chain()))
	}
	h.families = nil
	if h.vlan {
		// After the chains: no packet is queued without its tag.
		errs = append(errs, removeVLANTable(context.Background(), h.cfg.NetNS, h.cfg.VLANTable()))
		h.vlan = false
	}
	return errors.Join(errs...)
}

// Matched returns how many packets the hook's NFQUEUE rules have matched
// so far, in both families: those queued and those the kernel let past a
// full queue (fail-open), which nothing else counts.
func (h *Hook) Matched() (uint64, error) {
	if h == nil {
		return 0, nil
	}
	var n uint64
	for _, bin := range h.families {
		m, err := matched(context.Background(), h.cfg.NetNS, bin, h.cfg.Chain())
		if err != nil {
			return n, err
		}
		n += m
	}
	return n, nil
}

// RemoveCounting removes the jumps first, then reads the NFQUEUE rules'
// counters (Matched: no packet can match any more), then deletes the
// chains. Safe to call twice.
func (h *Hook) RemoveCounting() (uint64, error) {
	if h == nil {
		return 0, nil
	}
	var errs []error
	for _, bin := range h.families {
		_, err := removeJumps(context.Background(), h.cfg.NetNS, bin, h.cfg.Chain())
		errs = append(errs, err)
	}
	n, err := h.Matched()
	errs = append(errs, err)
	errs = append(errs, h.Remove())
	return n, errors.Join(errs...)
}

// matched sums the packet counters of chain's NFQUEUE rules.
func matched(ctx context.Context, ns, bin, chain string) (uint64, error) {
	out, err := netns.Output(ctx, ns, bin, "-w", "-L", chain, "-v", "-x", "-n")
	if err != nil {
		return 0, fmt.Errorf("bridgehook: read counters of %s: %w", chain, err)
	}
	var n uint64
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[2] != "NFQUEUE" {
			continue
		}
		if v, err := strconv.ParseUint(f[0], 10, 64); err == nil {
			n += v
		}
	}
	return n, nil
}

// removeJumps deletes every FORWARD rule that jumps to chain. listed is
// false when FORWARD could not be listed (then nothing was deleted).
func removeJumps(ctx context.Context, ns, bin, chain string) (listed bool, err error) {
	out, err := netns.Output(ctx, ns, bin, "-w", "-S", "FORWARD")
	if err != nil {
		return false, fmt.Errorf("bridgehook: list FORWARD: %w", err)
	}
	var errs []error
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "-A" || !jumpsTo(f, chain) {
			continue
		}
		f[0] = "-D"
		if err := ipt(ctx, ns, bin, unquote(f)...); err != nil {
			errs = append(errs, err)
		}
	}
	return true, errors.Join(errs...)
}

// removeChain deletes every FORWARD rule that jumps to chain, then flushes
// and deletes chain. A chain that does not exist is not an error.
func removeChain(ctx context.Context, ns, bin, chain string) error {
	listed, err := removeJumps(ctx, ns, bin, chain)
	if listed && chainExists(ctx, ns, bin, chain) {
		err = errors.Join(err, ipt(ctx, ns, bin, "-F", chain), ipt(ctx, ns, bin, "-X", chain))
	}
	return err
}

func jumpsTo(fields []string, chain string) bool {
	for i := 0; i+1 < len(fields); i++ {
		if fields[i] == "-j" && fields[i+1] == chain {
			return true
		}
	}
	return false
}

// unquote strips the quotes iptables -S puts around comment strings.
func unquote(f []string) []string {
	for i, s := range f {
		f[i] = strings.Trim(s, `"`)
	}
	return f
}

func chainExists(ctx context.Context, ns, bin, chain string) bool {
	return netns.Command(ctx, ns, bin, "-w", "-S", chain).Run() == nil
}

func ipt(ctx context.Context, ns, bin string, args ...string) error {
	if err := netns.Run(ctx, ns, append([]string{bin, "-w"}, args...)...); err != nil {
		return fmt.Errorf("bridgehook: %w", err)
	}
	return nil
}

// Cleanup removes every chain this package made in the namespace (any
// queue), with the jumps to them, and returns their names. It is what
// `closeduel cleanup` runs after a crash.
func Cleanup(ctx context.Context, ns string) ([]string, error) {
	var removed []string
	var errs []error
	for _, bin := range []string{"iptables", "ip6tables"} {
		out, err := netns.Output(ctx, ns, bin, "-w", "-S")
		if err != nil {
			errs = append(errs, fmt.Errorf("bridgehook: list %s rules: %w", bin, err))
			continue
		}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) == 2 && f[0] == "-N" && strings.HasPrefix(f[1], ChainPrefix) {
				if err := removeChain(ctx, ns, bin, f[1]); err != nil {
					errs = append(errs, err)
					continue
				}
				removed = append(removed, bin+" "+f[1])
			}
		}
	}
	tables, err := vlanTables(ctx, ns)
	errs = append(errs, err)
	for _, t := range tables {
		if err := deleteVLANTable(ctx, ns, t); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, "nft bridge "+t)
	}
	return removed, errors.Join(errs...)
}

// Leftovers lists the chains of this package in the namespace (for tests
// and for `closeduel cleanup --dry-run`).
func Leftovers(ctx context.Context, ns string) ([]string, error) {
	var found []string
	for _, bin := range []string{"iptables", "ip6tables"} {
		out, err := netns.Output(ctx, ns, bin, "-w", "-S")
		if err != nil {
			return found, fmt.Errorf("bridgehook: list %s rules: %w", bin, err)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, ChainPrefix) {
				found = append(found, bin+": "+line)
			}
		}
	}
	tables, err := vlanTables(ctx, ns)
	for _, t := range tables {
		found = append(found, "nft: table bridge "+t)
	}
	return found, err
}

// nftBin is the nftables command line tool VLANTags needs.
const nftBin = "nft"

// nftScript runs script with nft -f in the namespace.
func nftScript(ctx context.Context, ns, script string) error {
	if _, err := exec.LookPath(nftBin); err != nil {
		return fmt.Errorf("bridgehook: VLAN tags need the nft command (Debian package nftables): %w", err)
	}
	cmd := netns.Command(ctx, ns, nftBin, "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("bridgehook: nft -f: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// vlanTables lists the VLANTags tables in the namespace: none when nft is
// not installed (then none can have been made).
func vlanTables(ctx context.Context, ns string) ([]string, error) {
	if _, err := exec.LookPath(nftBin); err != nil {
		return nil, nil
	}
	out, err := netns.Output(ctx, ns, nftBin, "list", "tables", "bridge")
	if err != nil {
		return nil, fmt.Errorf("bridgehook: list nft tables: %w", err)
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "table" && f[1] == "bridge" && strings.HasPrefix(f[2], NftVLANPrefix) {
			names = append(names, f[2])
		}
	}
	return names, nil
}

// removeVLANTable deletes a VLANTags table; one that does not exist is
// not an error.
func removeVLANTable(ctx context.Context, ns, table string) error {
	tables, err := vlanTables(ctx, ns)
	if err != nil || !slices.Contains(tables, table) {
		return err
	}
	return deleteVLANTable(ctx, ns, table)
}

// deleteVLANTable deletes a VLANTags table known to exist (vlanTables
// listed it).
func deleteVLANTable(ctx context.Context, ns, table string) error {
	if err := netns.Run(ctx, ns, nftBin, "delete", "table", "bridge", table); err != nil {
		return fmt.Errorf("bridgehook: %w", err)
	}
	return nil
}
