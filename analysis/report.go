package analysis

import (
	"math"
	"slices"
	"time"
)

// SchemaVersion names the JSON layout of a Report. It changes when a field
// changes meaning or goes away; new fields may appear within a version.
const SchemaVersion = "closeduel.analysis/v2"

// Report is the result of one analysis.
type Report struct {
	Schema string      `json:"schema"`
	Inputs []InputInfo `json:"inputs"`
	Run    *RunInfo    `json:"run,omitempty"`
	// First and Last are the times of the first and last segment.
	First time.Time `json:"first,omitzero"`
	Last  time.Time `json:"last,omitzero"`
	// InferredWorkloadEnd is, when the inputs carry no run metadata
	// (Run.WorkloadEnd), the workload's end inferred from the segments:
	// the start of the client's last new connection (the last incarnation
	// opened by a SYN). Duels' AfterWorkload are judged against it, and
	// reports label them inferred.
	InferredWorkloadEnd time.Time `json:"inferred_workload_end,omitzero"`
	// Settings are the definitions' parameters the analysis used.
	Settings Settings `json:"settings"`
	Totals   Totals   `json:"totals"`
	// Connections lists incarnations in the order they ended; see
	// ConnectionsOmitted.
	Connections []Connection `json:"connections"`
	// ConnectionsOmitted counts incarnations left out of Connections to
	// bound memory: after Settings.MaxConnections rows only those that did
	// not close cleanly are kept, and none after twice that many.
	ConnectionsOmitted int `json:"connections_omitted"`
	// Duels lists the duels in the order they ended.
	Duels []Duel `json:"duels"`
	// DuelsOmitted counts duels beyond Settings.MaxDuels (counted in the
	// totals, not listed).
	DuelsOmitted int `json:"duels_omitted"`
}

// Settings are the parameters of the definitions.
type Settings struct {
	// MaxBackoff is the longest quiet a duel goes on through.
	MaxBackoff  Seconds `json:"max_backoff_s"`
	IdleTimeout Seconds `json:"idle_timeout_s"`
	// MSL and TimeWait are the tracker's: TimeWait is how long an
	// endpoint of an unknown stack is taken to hold TIME-WAIT.
	MSL      Seconds `json:"msl_s"`
	TimeWait Seconds `json:"time_wait_s"`
	// MaxTuples bounds the 4-tuples held at once (Totals.EvictedTuples).
	MaxTuples      int `json:"max_tuples"`
	MaxConnections int `json:"max_connections"`
	MaxDuels       int `json:"max_duels"`
}

// Totals are the figures of the whole analysis.
type Totals struct {
	Segments int `json:"segments"`
	// Skipped counts records that were not TCP or did not decode.
	Skipped     int `json:"skipped"`
	Connections int `json:"connections"`
	// CleanCloses counts incarnations with close kind fin whose FINs were
	// both acknowledged, with no RST and no duel.
	CleanCloses int `json:"clean_closes"`
	// Closes counts incarnations by close kind.
	Closes         map[string]int `json:"closes"`
	FailedRequests int            `json:"failed_requests"`
	// ConnTimeP50 and ConnTimeP99 are percentiles of the incarnations'
	// durations (within 1%).
	ConnTimeP50 Seconds `json:"conn_time_p50_s"`
	ConnTimeP99 Seconds `json:"conn_time_p99_s"`
	Duels       int     `json:"duels"`
	// DuelSegments and DuelSeconds sum the duels' segments and durations.
	DuelSegments int     `json:"duel_segments"`
	DuelSeconds  Seconds `json:"duel_seconds"`
	// DuelsAfterWorkload counts duels that went on after the workload
	// stopped (only with run metadata).
	DuelsAfterWorkload int `json:"duels_after_workload"`
	Retransmissions    int `json:"retransmissions"`
	SYNRetransmissions int `json:"syn_retransmissions"`
	FINRetransmissions int `json:"fin_retransmissions"`
	RSTs               int `json:"rsts"`
	IgnoredRSTs        int `json:"ignored_rsts"`
	TimeWaitReuses     int `json:"time_wait_reuses"`
	// EvictedTuples counts 4-tuples forgotten early, while a stack might
	// still have acted on them, because Settings.MaxTuples were live: what
	// came after on such a tuple was taken as a new incarnation.
	EvictedTuples int `json:"evicted_tuples"`
	// Verdicts counts closeduel's annotations: queued packets' verdicts,
	// drops among them, injected and duplicated segments.
	Verdicts   int `json:"verdicts"`
	Drops      int `json:"drops"`
	Injected   int `json:"injected"`
	Duplicates int `json:"duplicates"`
}

// Seconds is a duration that JSON renders as seconds.
type Seconds float64

// secondsOf converts ns.
func secondsOf(ns int64) Seconds { return Seconds(float64(ns) / 1e9) }

// Duration returns s as a time.Duration.
func (s Seconds) Duration() time.Duration { return time.Duration(float64(s) * 1e9) }

// Connection is one incarnation of a 4-tuple.
type Connection struct {
	ID int `json:"id"`
	// Orig is the originator (the side that sent the first SYN), Resp the
	// responder.
	Orig string `json:"orig"`
	Resp string `json:"resp"`
	// Start is the first segment, End the last; Closed is when the
	// connection ended (zero when it did not).
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Closed   time.Time `json:"closed,omitzero"`
	Duration Seconds   `json:"duration_s"`
	Close    CloseKind `json:"close"`
	// Closer is the side that sent the first FIN or RST.
	Closer  Side   `json:"closer"`
	History string `json:"history"`
	// Segments and Bytes count by direction: [orig→resp, resp→orig].
	Segments           [2]int `json:"segments"`
	Bytes              [2]int `json:"bytes"`
	Retransmissions    int    `json:"retransmissions"`
	SYNRetransmissions int    `json:"syn_retransmissions"`
	FINRetransmissions int    `json:"fin_retransmissions"`
	RSTs               int    `json:"rsts"`
	IgnoredRSTs        int    `json:"ignored_rsts"`
	// TimeWaitReuse reports that the SYN met a tuple the responder still
	// held: TIME-WAIT by the tracker's model, or shown by an ACK for
	// another incarnation (tcpstate.Conn.Reused).
	TimeWaitReuse bool `json:"time_wait_reuse"`
	// Established reports a completed three-way handshake.
	Established bool `json:"established"`
	Failed      bool `json:"failed"`
	Clean       bool `json:"clean"`
	// Duels counts the duels that started in this incarnation.
	Duels int `json:"duels"`
}

// Duel is one ping-pong on a tuple after a close; DEFINITIONS.md says
// exactly what starts and ends one.
type Duel struct {
	ID int `json:"id"`
	// Orig and Resp orient the tuple as the incarnation the duel started
	// in does.
	Orig       string    `json:"orig"`
	Resp       string    `json:"resp"`
	Connection int       `json:"connection"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	Duration   Seconds   `json:"duration_s"`
	// Ongoing reports a duel still running when the inputs ended.
	Ongoing bool `json:"ongoing"`
	// Cause says what set the stage: "syn-to-held-tuple" (a SYN met an
	// ACK for another incarnation), "after-rst" (the peer kept sending
	// after a valid RST), "after-fin" (segments after both FINs were
	// acknowledged), "stalled-close" (both FINs sent, the close never
	// completed, a side retransmitting).
	Cause    Cause `json:"cause"`
	Segments int   `json:"segments"`
	// ByDirection counts the segments per direction and kind:
	// [orig→resp, resp→orig].
	ByDirection [2]FlagCounts `json:"by_direction"`
	// Turns counts the changes of direction between consecutive segments.
	Turns   int        `json:"turns"`
	Dropped int        `json:"dropped"`
	Trigger SegmentRef `json:"trigger"`
	// AfterWorkload is set with run metadata: whether the duel went on
	// after the workload stopped, and for how long.
	AfterWorkload        *bool   `json:"after_workload,omitempty"`
	AfterWorkloadSeconds Seconds `json:"after_workload_s,omitempty"`
	// Verdicts are closeduel's verdicts on segments of the duel.
	Verdicts VerdictCounts `json:"verdicts"`
	// Ladder holds the first segments of the duel (at most LadderMax) for
	// the flow diagram; LadderOmitted counts the rest.
	Ladder        []SegmentRef `json:"ladder"`
	LadderOmitted int          `json:"ladder_omitted"`
}

// LadderMax is the most segments a Duel keeps for its ladder diagram.
const LadderMax = 60

// FlagCounts counts segments by kind: each segment counts once, under the
// first of RST, SYN+ACK, SYN, FIN, data, ACK (in that order) it matches.
type FlagCounts struct {
	SYN    int `json:"syn"`
	SYNACK int `json:"synack"`
	ACK    int `json:"ack"`
	Data   int `json:"data"`
	FIN    int `json:"fin"`
	RST    int `json:"rst"`
}

// SegmentRef describes one segment.
type SegmentRef struct {
	Time time.Time `json:"time"`
	// Dir is "orig>resp" or "resp>orig".
	Dir   string `json:"dir"`
	Flags string `json:"flags"`
	Seq   uint32 `json:"seq"`
	Ack   uint32 `json:"ack"`
	Len   int    `json:"len"`
	// Dropped reports that closeduel dropped it; Note is closeduel's
	// annotation ("drop action=drop rule=x", "injected action=inject
	// rule=y") when there is one other than a plain pass.
	Dropped bool   `json:"dropped,omitempty"`
	Note    string `json:"note,omitempty"`
}

// VerdictCounts tallies closeduel's verdicts.
type VerdictCounts struct {
	Total      int            `json:"total"`
	Accepted   int            `json:"accepted"`
	Dropped    int            `json:"dropped"`
	Injected   int            `json:"injected"`
	Duplicates int            `json:"duplicates"`
	ByRule     map[string]int `json:"by_rule,omitempty"`
	ByAction   map[string]int `json:"by_action,omitempty"`
}

func (v *VerdictCounts) add(n *Note) {
	v.Total++
	switch n.Kind {
	case NoteVerdict:
		if n.Drop {
			v.Dropped++
		} else {
			v.Accepted++
		}
	case NoteInjected:
		v.Injected++
	case NoteDuplicate:
		v.Duplicates++
	}
	if n.Rule != "" {
		if v.ByRule == nil {
			v.ByRule = make(map[string]int)
		}
		v.ByRule[n.Rule]++
	}
	if n.Action != "" {
		if v.ByAction == nil {
			v.ByAction = make(map[string]int)
		}
		v.ByAction[n.Action]++
	}
}

// quantiles estimates percentiles of positive durations in fixed memory:
// log buckets 1% wide.
type quantiles struct {
	counts map[int32]int
	n      int
}

const bucketBase = 1.01

func (q *quantiles) add(ns int64) {
	if q.counts == nil {
		q.counts = make(map[int32]int)
	}
	b := int32(-1)
	if ns > 0 {
		b = int32(math.Log(float64(ns)) / math.Log(bucketBase))
	}
	q.counts[b]++
	q.n++
}

// quantile returns the p-quantile (0..1) in ns: the upper edge of the
// bucket holding it.
func (q *quantiles) quantile(p float64) int64 {
	if q.n == 0 {
		return 0
	}
	keys := make([]int32, 0, len(q.counts))
	for k := range q.counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	rank := int(math.Ceil(p * float64(q.n)))
	if rank < 1 {
		rank = 1
	}
	seen := 0
	for _, k := range keys {
		seen += q.counts[k]
		if seen >= rank {
			if k < 0 {
				return 0
			}
			return int64(math.Pow(bucketBase, float64(k)+0.5))
		}
	}
	return 0
}
