package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/closeduel/closeduel/mitigate"
	"github.com/closeduel/closeduel/nfq"
	"github.com/closeduel/closeduel/rules"
	"github.com/closeduel/closeduel/tcpstate"
	"github.com/closeduel/closeduel/verdictlog"
)

// Sources are where the collector reads its figures at scrape time; a nil
// source leaves its metrics out.
type Sources struct {
	// Engine returns the engine's counters.
	Engine func() nfq.Snapshot
	// Rules returns the rules in force with their hits.
	Rules func() []rules.RuleStatus
	// Tracker returns the connection tracker's counters.
	Tracker func() *tcpstate.Stats
	// Log returns the verdict log writer's counters.
	Log func() verdictlog.Stats
	// Live is the live analysis (duels detected while the run goes on).
	Live *Live
	// Switches counts rule and mitigation switches.
	Switches *Switches
	// Mitigations returns the mitigations switched on, MitigationStats
	// their counters.
	Mitigations     func() mitigate.Set
	MitigationStats func() *mitigate.Stats
	// Version is the build's version, exported as closeduel_build_info.
	Version string
}

// Collector is a prometheus.Collector over Sources.
type Collector struct {
	src Sources
}

// NewCollector returns a Collector reading src.
func NewCollector(src Sources) *Collector { return &Collector{src: src} }

// metric descriptions, one per exported name.
var (
	descBuildInfo = prometheus.NewDesc("closeduel_build_info", "The closeduel build running, as a constant 1 labelled with its version.", []string{"version"}, nil)

	descPackets    = prometheus.NewDesc("closeduel_packets_total", "Packets the engine received from the kernel queue and gave a verdict.", nil, nil)
	descUnparsed   = prometheus.NewDesc("closeduel_packets_unparsed_total", "Packets passed unchanged without a decision, by reason (non_tcp, malformed).", []string{"reason"}, nil)
	descVerdicts   = prometheus.NewDesc("closeduel_verdicts_total", "Final verdicts given, by verdict (accept, drop).", []string{"verdict"}, nil)
	descRewritten  = prometheus.NewDesc("closeduel_packets_rewritten_total", "Packets accepted with changed bytes.", nil, nil)
	descActions    = prometheus.NewDesc("closeduel_actions_total", "Decisions by rule-language action (pass when no rule applied).", []string{"action"}, nil)
	descRuleHits   = prometheus.NewDesc("closeduel_rule_decisions_total", "Segments each rule decided since its rule file was loaded (a reload starts again from 0), by rule and action.", []string{"rule", "action"}, nil)
	descRuleOn     = prometheus.NewDesc("closeduel_rule_enabled", "1 when the rule is switched on, 0 when off.", []string{"rule", "action"}, nil)
	descHeld       = prometheus.NewDesc("closeduel_held_packets_total", "Packets held back (delays, holds) since the start.", nil, nil)
	descReleased   = prometheus.NewDesc("closeduel_released_packets_total", "Held packets released.", nil, nil)
	descHoldRefuse = prometheus.NewDesc("closeduel_hold_refused_total", "Holds refused because the hold queue was full (the packet got its verdict at once).", nil, nil)
	descHoldDepth  = prometheus.NewDesc("closeduel_held_packets", "Packets held now (the hold queue's depth).", nil, nil)
	descSent       = prometheus.NewDesc("closeduel_sent_packets_total", "Frames the engine sent itself, by kind (duplicate, inject).", []string{"kind"}, nil)
	descSendFailed = prometheus.NewDesc("closeduel_send_failures_total", "Duplicates and injections that could not be sent.", nil, nil)
	descErrors     = prometheus.NewDesc("closeduel_engine_errors_total", "Engine errors by kind (decider_panic, verdict, bad_message).", []string{"kind"}, nil)
	descKDropped   = prometheus.NewDesc("closeduel_kernel_queue_dropped_total", "Packets the kernel dropped, by cause: queue_full (the queue was full) or socket_full (the netlink socket could not take them).", []string{"cause"}, nil)
	descKWaiting   = prometheus.NewDesc("closeduel_kernel_queue_packets", "Packets waiting in the kernel queue for a verdict now.", nil, nil)

	descLogRecorded = prometheus.NewDesc("closeduel_log_records_total", "Events handed to the verdict log.", nil, nil)
	descLogLost     = prometheus.NewDesc("closeduel_log_records_lost_total", "Events the verdict log lost because its buffer was full (marked in the log).", nil, nil)
	descLogFailed   = prometheus.NewDesc("closeduel_log_records_failed_total", "Events that did not reach every log file (a write or flush failed).", nil, nil)

	descTracked  = prometheus.NewDesc("closeduel_tracked_connections", "Connections the tracker holds now.", nil, nil)
	descCreated  = prometheus.NewDesc("closeduel_tracker_connections_total", "4-tuples the tracker first saw.", nil, nil)
	descIncarn   = prometheus.NewDesc("closeduel_tracker_incarnations_total", "New incarnations of a 4-tuple the tracker remembered.", nil, nil)
	descExpired  = prometheus.NewDesc("closeduel_tracker_expired_total", "Connections forgotten after their idle time or 2*MSL after closing.", nil, nil)
	descEvicted  = prometheus.NewDesc("closeduel_tracker_evictions_total", "Connections forgotten early to make room.", nil, nil)
	descDuels    = prometheus.NewDesc("closeduel_duels_total", "Close duels the live analysis detected (ended and ongoing; analysis/DEFINITIONS.md).", nil, nil)
	descOngoing  = prometheus.NewDesc("closeduel_duels_ongoing", "Close duels going on now, as far as the live analysis has seen.", nil, nil)
	descLiveConn = prometheus.NewDesc("closeduel_analysis_connections_total", "Connection incarnations the live analysis has seen start.", nil, nil)
	descIgnRST   = prometheus.NewDesc("closeduel_analysis_ignored_rsts_total", "RSTs the receiver ignored, per the live analysis.", nil, nil)
	descReuse    = prometheus.NewDesc("closeduel_analysis_time_wait_reuses_total", "TIME_WAIT reuses, per the live analysis.", nil, nil)
	descLiveLost = prometheus.NewDesc("closeduel_analysis_events_lost_total", "Events the live analysis missed because its ring was full.", nil, nil)
	descMitOn    = prometheus.NewDesc("closeduel_mitigation_enabled", "1 while the mitigation is switched on, 0 when off.", []string{"mitigation"}, nil)
	descMitDone  = prometheus.NewDesc("closeduel_mitigation_actions_total", "What the mitigations did, by mitigation and action (timewait-guard: moved, translated, released, full; final-ack-repair: repaired, kept_rst, kept_ack; duel-quench: quenched, dropped).", []string{"mitigation", "action"}, nil)
	descSwitches = prometheus.NewDesc("closeduel_switches_total", "Rule and mitigation switches at run time, by kind (rule, mitigation), name and the state switched to.", []string{"kind", "name", "state"}, nil)
)

// Describe implements prometheus.Collector. The collector is unchecked
// (its label values come and go with rule files), so it sends nothing.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if c.src.Version != "" {
		gauge(descBuildInfo, 1, c.src.Version)
	}
	if c.src.Engine != nil {
		s := c.src.Engine()
		counter(descPackets, s.Packets)
		counter(descUnparsed, s.NonTCP, "non_tcp")
		counter(descUnparsed, s.Malformed, "malformed")
		counter(descVerdicts, s.Accepted, "accept")
		counter(descVerdicts, s.Dropped, "drop")
		counter(descRewritten, s.Modified)
		for a, n := range s.ByAction {
			counter(descActions, n, a)
		}
		counter(descHeld, s.Held)
		counter(descReleased, s.Released)
		counter(descHoldRefuse, s.HoldOverflow)
		gauge(descHoldDepth, float64(s.HeldNow))
		counter(descSent, s.Duplicated, "duplicate")
		counter(descSent, s.Injected, "inject")
		counter(descSendFailed, s.SendFailed)
		counter(descErrors, s.DeciderPanic, "decider_panic")
		counter(descErrors, s.VerdictErrs, "verdict")
		counter(descErrors, s.BadMessages, "bad_message")
		counter(descKDropped, s.KernelQueueDropped, "queue_full")
		counter(descKDropped, s.KernelUserDropped, "socket_full")
		gauge(descKWaiting, float64(s.KernelQueueTotal))
	}
	if c.src.Rules != nil {
		for _, r := range c.src.Rules() {
			counter(descRuleHits, r.Hits, r.Name, r.Action)
			on := 0.0
			if r.Enabled {
				on = 1
			}
			gauge(descRuleOn, on, r.Name, r.Action)
		}
	}
	if c.src.Log != nil {
		s := c.src.Log()
		counter(descLogRecorded, s.Recorded)
		counter(descLogLost, s.Lost)
		counter(descLogFailed, s.Failed)
	}
	if c.src.Tracker != nil {
		if s := c.src.Tracker(); s != nil {
			gauge(descTracked, float64(s.Conns.Load()))
			counter(descCreated, s.Created.Load())
			counter(descIncarn, s.Incarnations.Load())
			counter(descExpired, s.Expired.Load())
			counter(descEvicted, s.Evicted.Load())
		}
	}
	if c.src.Live != nil {
		lc := c.src.Live.Counts()
		counter(descDuels, uint64(lc.Duels))
		gauge(descOngoing, float64(lc.OngoingDuels))
		counter(descLiveConn, uint64(lc.Connections))
		counter(descIgnRST, uint64(lc.IgnoredRSTs))
		counter(descReuse, uint64(lc.TimeWaitReuses))
		counter(descLiveLost, c.src.Live.Lost())
	}
	if c.src.Mitigations != nil {
		on := c.src.Mitigations()
		for _, n := range mitigate.All() {
			v := 0.0
			if on.Has(n) {
				v = 1
			}
			gauge(descMitOn, v, n.String())
		}
	}
	if c.src.MitigationStats != nil {
		if s := c.src.MitigationStats(); s != nil {
			tg, fr, dq := mitigate.TimewaitGuard.String(), mitigate.FinalAckRepair.String(), mitigate.DuelQuench.String()
			counter(descMitDone, s.Moved.Load(), tg, "moved")
			counter(descMitDone, s.Translated.Load(), tg, "translated")
			counter(descMitDone, s.Released.Load(), tg, "released")
			counter(descMitDone, s.Full.Load(), tg, "full")
			counter(descMitDone, s.Repaired.Load(), fr, "repaired")
			counter(descMitDone, s.KeptRSTs.Load(), fr, "kept_rst")
			counter(descMitDone, s.KeptACKs.Load(), fr, "kept_ack")
			counter(descMitDone, s.Quenched.Load(), dq, "quenched")
			counter(descMitDone, s.QuenchDrops.Load(), dq, "dropped")
		}
	}
	if c.src.Switches != nil {
		c.src.Switches.each(func(kind, name, state string, n uint64) { counter(descSwitches, n, kind, name, state) })
	}
}
