// Package metrics exports a running closeduel's counters in the Prometheus
// text format (github.com/prometheus/client_golang): packets, verdicts by
// action and by rule, holds, kernel queue drops, log records lost, tracked
// connections, duels detected live and mitigation switches. Counters are
// read from their owners at scrape time, so the engine's hot path carries
// no metrics code; the live duel count comes from an analysis.Analyzer fed
// off the hot path through a bounded ring (Live). It needs no privileges;
// Serve listens only where it is told.
package metrics
