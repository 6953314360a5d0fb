package rules

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/closeduel/closeduel/nfq"
	"github.com/closeduel/closeduel/segment"
)

// TestPortIndexAgreesWithAScanOfEveryRule is a differential test: random
// rule files (ports:, from:, flags, counting and chance conditions) and
// random segments between random ports, decided by two Deciders of the
// same file, one through the port index and one looking at every rule in
// turn; every decision must be the same (rule, action, verdict), counters
// and draws included.
func TestPortIndexAgreesWithAScanOfEveryRule(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	portSet := []uint16{80, 81, 5001, 9000, 9001, 9002, 40000, 40001}
	flagSet := []string{"SYN", "ACK", "FIN", "PSH", "RST"}
	for file := range 200 {
		var b strings.Builder
		fmt.Fprintf(&b, "experiment: index-%d\nabout: Random rules.\nhosts: { client: 192.168.100.1, device: 192.168.100.99 }\nseed: %d\nrules:\n", file, file)
		for i := range 1 + r.IntN(25) {
			var conds []string
			switch r.IntN(3) {
			case 0:
				conds = append(conds, "from: client")
			case 1:
				conds = append(conds, "from: device")
			}
			if n := r.IntN(4); n > 0 {
				var ps []string
				for range n {
					ps = append(ps, fmt.Sprint(portSet[r.IntN(len(portSet))]))
				}
				conds = append(conds, "ports: ["+strings.Join(ps, ", ")+"]")
			}
			if r.IntN(2) == 0 {
				conds = append(conds, "has: ["+flagSet[r.IntN(len(flagSet))]+"]")
			}
			switch r.IntN(4) {
			case 0:
				conds = append(conds, fmt.Sprintf("every: %d", 1+r.IntN(3)))
			case 1:
				conds = append(conds, "probability: 50%")
			}
			action := []string{"log-only", "drop", "pass"}[r.IntN(3)]
			fmt.Fprintf(&b, "  - name: r%d\n    when: { %s }\n    do: %s\n", i, strings.Join(conds, ", "), action)
		}
		f := mustParse(t, b.String())
		indexed, scanned := NewDecider(f, Options{}), NewDecider(f, Options{})
		scanned.cur.Load().scan = true
		for k := range 300 {
			cport, dport := portSet[r.IntN(len(portSet))], portSet[r.IntN(len(portSet))]
			src, dst := netip.AddrPortFrom(client, cport), netip.AddrPortFrom(device, dport)
			if r.IntN(2) == 0 {
				src, dst = dst, src
			}
			var fl segment.Flags
			for _, x := range []segment.Flags{segment.SYN, segment.ACK, segment.FIN, segment.PSH, segment.RST} {
				if r.IntN(3) == 0 {
					fl |= x
				}
			}
			seg := segment.Segment{Src: src, Dst: dst, Flags: fl, Seq: segment.Seq(r.Uint32()), Ack: segment.Seq(r.Uint32()), Window: 1000, WindowScale: -1}
			at := t0.Add(time.Duration(k) * time.Millisecond)
			var got, want nfq.Decision
			indexed.Decide(&nfq.Packet{TCP: true, Time: at, Seg: seg}, &got)
			scanned.Decide(&nfq.Packet{TCP: true, Time: at, Seg: seg}, &want)
			if got.Rule != want.Rule || got.Action != want.Action || got.Verdict != want.Verdict {
				t.Fatalf("file %d segment %d %v: indexed %q %q %v, scan of every rule %q %q %v\n%s", file, k, seg,
					got.Rule, got.Action, got.Verdict, want.Rule, want.Action, want.Verdict, b.String())
			}
		}
	}
}

// BenchmarkDecideRulesThatMatchNothing decides a connection's segments
// against the bench's 20 rules that name ports the traffic does not use
// (closeduel+20rules) and, for comparison, against a single rule.
func BenchmarkDecideRulesThatMatchNothing(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("experiment: twenty-rules\nabout: Twenty rules that match nothing.\nhosts: { client: 192.168.100.1, device: 192.168.100.99 }\nrules:\n")
	actions := []string{"drop", "{ delay: 10ms }", "{ hold-until-next: true, max: 1s }", "log-only"}
	for i := 1; i <= 20; i++ {
		from := "client"
		if i%2 == 0 {
			from = "device"
		}
		fmt.Fprintf(&sb, "  - name: nothing-%d\n    when: { from: %s, ports: %d, payload: \">0\" }\n    do: %s\n", i, from, 9000+i, actions[i%len(actions)])
	}
	for _, tc := range []struct{ name, file string }{
		{"one-rule", "experiment: one\nabout: One rule.\nhosts: { client: 192.168.100.1, device: 192.168.100.99 }\nrules:\n  - name: never\n    when: { has: [URG] }\n    do: drop\n"},
		{"twenty", sb.String()},
	} {
		for _, scan := range []bool{false, true} {
			name := tc.name
			if scan {
				name += "-scan"
			}
			b.Run(name, func(b *testing.B) {
				d := NewDecider(mustParse(b, tc.file), Options{})
				d.cur.Load().scan = scan
				ps := allocPackets(b)
				var dec nfq.Decision
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					j := i % len(ps)
					if j == 0 {
						for _, q := range ps {
							q.Time = q.Time.Add(10 * time.Minute)
						}
					}
					dec = nfq.Decision{}
					d.Decide(ps[j], &dec)
				}
			})
		}
	}
}
