package analysis

import (
	"encoding/json"
	"fmt"
)

// CloseKind says how an incarnation ended.
type CloseKind uint8

// Close kinds; DEFINITIONS.md defines each.
const (
	CloseUnfinished CloseKind = iota // no FIN and no RST
	CloseFIN                         // a FIN each way, no RST
	CloseFINRST                      // a FIN, then an RST
	CloseRST                         // an RST with no FIN before it
	CloseHalfOpen                    // a FIN one way only, no RST
	numCloseKinds
)

var closeKindNames = [numCloseKinds]string{"unfinished", "fin", "fin-rst", "rst", "half-open"}

// String names the kind as the reports do.
func (k CloseKind) String() string {
	if k < numCloseKinds {
		return closeKindNames[k]
	}
	return fmt.Sprintf("close(%d)", uint8(k))
}

// MarshalJSON renders the name.
func (k CloseKind) MarshalJSON() ([]byte, error) { return json.Marshal(k.String()) }

// UnmarshalJSON reads the name.
func (k *CloseKind) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	for i, n := range closeKindNames {
		if n == s {
			*k = CloseKind(i)
			return nil
		}
	}
	return fmt.Errorf("analysis: unknown close kind %q", s)
}

// Side is one end of a connection.
type Side uint8

// Sides.
const (
	SideNone Side = iota // neither (no FIN or RST was sent)
	SideOrig             // the originator: the side that sent the first SYN
	SideResp             // the responder
)

var sideNames = [...]string{"none", "orig", "resp"}

// String names the side.
func (s Side) String() string {
	if int(s) < len(sideNames) {
		return sideNames[s]
	}
	return fmt.Sprintf("side(%d)", uint8(s))
}

// MarshalJSON renders the name.
func (s Side) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads the name.
func (s *Side) UnmarshalJSON(b []byte) error {
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	for i, n := range sideNames {
		if n == v {
			*s = Side(i)
			return nil
		}
	}
	return fmt.Errorf("analysis: unknown side %q", v)
}
