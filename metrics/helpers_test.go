package metrics

import (
	"net/netip"

	"github.com/closeduel/closeduel/analysis"
)

func analysisConfig() analysis.Config { return analysis.Config{} }

func mustAP(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
