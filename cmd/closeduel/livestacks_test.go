package main

import (
	"net/netip"
	"testing"
	"time"

	"github.com/closeduel/closeduel/analysis"
	"github.com/closeduel/closeduel/lab"
	"github.com/closeduel/closeduel/rules"
	"github.com/closeduel/closeduel/segment"
	"github.com/closeduel/closeduel/tcpstate"
)

// TestLiveAnalysisTakesTheRulesStacks: run's live analysis (the one behind
// --metrics' duel counts) assumes the stacks the rule file's stacks: give
// its roles, as the rules' tracker does. Each case's device closes first and
// holds TIME-WAIT; the client then opens the same 4-tuple again, which is a
// TIME_WAIT reuse only where the device's stack still holds it: lwIP ignores
// the client's RST in TIME-WAIT (RFC 9293 would end it), Linux's TIME-WAIT
// lasts 60 s (RFC 9293's 2·MSL, 120 s).
func TestLiveAnalysisTakesTheRulesStacks(t *testing.T) {
	tests := []struct {
		name   string
		stacks string
		rst    bool          // the client resets the device's TIME-WAIT
		gap    time.Duration // from the close to the new SYN
		want   int           // TIME_WAIT reuses
	}{
		{"lwip device ignores the RST", "{ client: linux, device: lwip }", true, time.Second, 1},
		{"rfc9293 device takes the RST", "{ client: rfc9293, device: rfc9293 }", true, time.Second, 0},
		{"linux device's TIME-WAIT is over after 60 s", "{ client: linux, device: linux }", false, 90 * time.Second, 0},
		{"rfc9293 device's TIME-WAIT lasts 120 s", "{ client: rfc9293, device: rfc9293 }", false, 90 * time.Second, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := rules.Parse("live.yaml", []byte("experiment: live\nabout: stacks\nhosts: { client: 10.0.0.1, device: 10.0.0.2 }\nstacks: "+tt.stacks+"\nrules: []\n"))
			if err != nil {
				t.Fatal(err)
			}
			an := analysis.NewAnalyzer(liveAnalysis(rules.NewDecider(f, rules.Options{})))
			c, d := netip.MustParseAddrPort("10.0.0.1:40000"), netip.MustParseAddrPort("10.0.0.2:80")
			now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			send := func(dt time.Duration, fromClient bool, flags segment.Flags, seq, ack uint32, n int) {
				now = now.Add(dt)
				seg := segment.Segment{Flags: flags, Seq: segment.Seq(seq), Ack: segment.Seq(ack), Window: 65535, PayloadLen: n, WindowScale: -1}
				seg.Src, seg.Dst = d, c
				if fromClient {
					seg.Src, seg.Dst = c, d
				}
				an.Add(&analysis.Event{Kind: analysis.EventPacket, Time: now.UnixNano(), Seg: seg, Counted: true})
			}
			const (
				A  = segment.ACK
				PA = segment.PSH | segment.ACK
				FA = segment.FIN | segment.ACK
			)
			ms := time.Millisecond
			send(ms, true, segment.SYN, 1000, 0, 0)
			send(ms, false, segment.SYN|A, 5000, 1001, 0)
			send(ms, true, A, 1001, 5001, 0)
			send(ms, true, PA, 1001, 5001, 100)
			send(ms, false, PA, 5001, 1101, 200)
			send(ms, false, FA, 5201, 1101, 0) // the device closes first
			send(ms, true, FA, 1101, 5202, 0)
			send(ms, false, A, 5202, 1102, 0) // the device is in TIME-WAIT
			if tt.rst {
				send(ms, true, segment.RST, 1102, 0, 0)
			}
			send(tt.gap, true, segment.SYN, 90000, 0, 0)
			send(ms, false, segment.SYN|A, 7000, 90001, 0)
			send(ms, true, A, 90001, 7001, 0)
			if got := an.LiveCounts().TimeWaitReuses; got != tt.want {
				t.Errorf("live analysis: %d TIME_WAIT reuses, want %d (stacks: %s)", got, tt.want, tt.stacks)
			}
		})
	}
}

// TestLabRulesTakeTheBenchStacks: in the lab, the rules' tracker assumes
// the stacks the bench runs (the lab's analysis does too), not the device
// the rule file was written for.
func TestLabRulesTakeTheBenchStacks(t *testing.T) {
	for _, kind := range []lab.DeviceKind{lab.DeviceLwIP, lab.DeviceLinux} {
		f, err := rules.LoadLibrary("busy-close") // stacks: { client: linux, device: lwip }
		if err != nil {
			t.Fatal(err)
		}
		cfg := lab.Config{Device: kind}
		labInline(&cfg, f, false)
		dev := netip.AddrPortFrom(f.Hosts[rules.Device][0].Addr(), 80)
		cli := netip.AddrPortFrom(f.Hosts[rules.Client][0].Addr(), 40000)
		d := cfg.Inline.(*lab.Engine).Decider.(*rules.Decider)
		if got, want := d.StackOf(dev), kind.Stack(); got != want {
			t.Errorf("%s device: the rules assume %s at %s, want %s", kind, got, dev, want)
		}
		if got := d.StackOf(cli); got != tcpstate.Linux {
			t.Errorf("%s device: the rules assume %s at the client %s, want linux", kind, got, cli)
		}
	}
}
