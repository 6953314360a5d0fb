package lab

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/closeduel/closeduel/analysis"
)

// Files a run directory holds.
const (
	FileRecord = "run.yaml"   // every setting, versions, seed, results
	FileReport = "report.txt" // the report printed at the end
	// FileReportJSON and FileReportHTML are the analysis report of the
	// run as JSON and as an offline page.
	FileReportJSON = "report.json"
	FileReportHTML = "report.html"
	FileWorkload   = "workload.log"   // the client's ClientEvents (JSON Lines)
	FileDevice     = "device.log"     // the device's DeviceEvents (JSON Lines)
	FileVerdicts   = "verdicts.jsonl" // the middlebox's verdict log (written by the Inline)
	// FileCapture is the capture the report is built from: the
	// middlebox's, with each verdict as a packet comment, when an Inline
	// runs; the lab's own capture of the bridge otherwise.
	FileCapture = "capture.pcapng"
	// FileWire is the lab's own capture of the bridge when an Inline
	// writes FileCapture: every frame as the hosts sent it, before any
	// verdict. It sits in a subdirectory so that analysing the run
	// directory does not count each segment twice.
	FileWire = "wire/bridge.pcapng"
)

// Result is what a run produced.
type Result struct {
	// Dir is the run directory.
	Dir string
	// Record is what run.yaml holds.
	Record Record
	// Summary followed the bench's segments (the segments after the client
	// stopped).
	Summary *Summary
	// Analysis is the report of the analysis the Summary fed while the run
	// went on: the same segments, verdicts and definitions as the analysis
	// of the run directory.
	Analysis *analysis.Report
	// DeviceStatus is the device's last status line.
	DeviceStatus DeviceEvent
}

// Record is the content of run.yaml: enough to repeat the run and compare.
type Record struct {
	Experiment string    `yaml:"experiment"`
	Command    []string  `yaml:"command,flow"`
	Started    time.Time `yaml:"started"`
	Finished   time.Time `yaml:"finished"`
	// WorkloadStart and WorkloadEnd are when the client issued its first
	// and its last request (the end of its schedule: the client stopped).
	WorkloadStart time.Time `yaml:"workload_start"`
	WorkloadEnd   time.Time `yaml:"workload_end"`
	Seed          int64     `yaml:"seed"`
	Versions      Versions  `yaml:"versions"`
	Topology      struct {
		Name       string   `yaml:"name"`
		Namespaces []string `yaml:"namespaces,flow"`
		ClientAddr string   `yaml:"client_addr"`
		DeviceAddr string   `yaml:"device_addr"`
		// PacketCPU takes every port's receive processing (RPS) and the
		// lwIP device; ClientCPU the client and the Linux device. Both
		// devices and the client run at Priority.
		PacketCPU string `yaml:"packet_cpu"`
		ClientCPU string `yaml:"client_cpu"`
		Priority  string `yaml:"priority"`
	} `yaml:"topology"`
	Device struct {
		Kind     DeviceKind `yaml:"kind"`
		Close    CloseMode  `yaml:"close"`
		Size     int        `yaml:"size"`
		Pool     int        `yaml:"pool"`
		TimeWait string     `yaml:"time_wait"`
		// BusyClose: the lwIP device took in no acknowledgment of its
		// FIN (Config.BusyClose).
		BusyClose bool `yaml:"busy_close,omitempty"`
		Port      int  `yaml:"port"`
	} `yaml:"device"`
	Workload struct {
		Schedule    Schedule          `yaml:"schedule"`
		Requests    int               `yaml:"requests"`
		Concurrency int               `yaml:"concurrency"`
		Linger0     bool              `yaml:"linger0"`
		RandomPorts bool              `yaml:"random_ports,omitempty"`
		ClientClose string            `yaml:"client_close"`
		Timeout     string            `yaml:"timeout"`
		Quiet       string            `yaml:"quiet"`
		PortRange   string            `yaml:"port_range,omitempty"`
		Set         map[string]string `yaml:"sysctls_set,omitempty"`
		Sysctls     map[string]string `yaml:"sysctls"`
	} `yaml:"workload"`
	Rules  string `yaml:"rules"`
	Inline bool   `yaml:"inline"`
	// Settings are the bench settings with where each came from
	// (default, the rule file's lab: section, or a flag).
	Settings []Setting `yaml:"settings,omitempty"`
	Results  Results   `yaml:"results"`
	// Expect is the rule file's expect: section for this device, checked
	// against the results; ExpectationMet is nil without one.
	Expect         []ExpectResult `yaml:"expect,omitempty"`
	ExpectationMet *bool          `yaml:"expectation_met,omitempty"`
	Files          []string       `yaml:"files,flow"`
}

// Versions records what ran.
type Versions struct {
	Closeduel    string `yaml:"closeduel"`
	Go           string `yaml:"go"`
	Kernel       string `yaml:"kernel"`
	LwIP         string `yaml:"lwip,omitempty"`
	LwIPPackage  string `yaml:"lwip_package,omitempty"`
	DeviceSource string `yaml:"device_source_sha256,omitempty"`
}

// Results are the run's figures.
type Results struct {
	RequestsOK     int    `yaml:"requests_ok"`
	RequestsFailed int    `yaml:"requests_failed"`
	RequestsLate   int    `yaml:"requests_late"`
	MaxStartError  string `yaml:"max_start_error"`
	MaxGapError    string `yaml:"max_gap_error"`
	// WireGapError is the largest error of the schedule as the device
	// got it: the client's SYNs as the bench delivered them against the
	// schedule (Summary.WireGapError; "" when they do not pair up).
	WireGapError  string    `yaml:"wire_gap_error,omitempty"`
	ClientStopped time.Time `yaml:"client_stopped"`
	// Frames counts the frames of the lab's own capture of the bridge;
	// OutOfOrder the segments in it that came out of their sender's
	// order (the bench's in-order check; 0 is a faithful bench).
	Frames     int `yaml:"frames"`
	OutOfOrder int `yaml:"out_of_order"`
	// AfterStop counts the bench's segments after the client stopped,
	// LastAfterStop how long after it the last came.
	AfterStop     int    `yaml:"segments_after_client_stopped"`
	LastAfterStop string `yaml:"last_segment_after_stop,omitempty"`
	// Analysis holds the analysis' headline figures of the run, by its
	// definitions (analysis/DEFINITIONS.md).
	Analysis        AnalysisFigures   `yaml:"analysis"`
	Verdicts        map[string]uint64 `yaml:"verdicts,omitempty"`
	DeviceTimeWait  int               `yaml:"device_time_wait_at_end"`
	DevicePoolKills map[string]int    `yaml:"device_pool_killed,omitempty"`
}

// AnalysisFigures are the analysis' totals a run record keeps, under the
// names of the analysis' JSON report.
type AnalysisFigures struct {
	Segments           int            `yaml:"segments"`
	Connections        int            `yaml:"connections"`
	CleanCloses        int            `yaml:"clean_closes"`
	Closes             map[string]int `yaml:"closes,omitempty"`
	FailedRequests     int            `yaml:"failed_requests"`
	Retransmissions    int            `yaml:"retransmissions"`
	FINRetransmissions int            `yaml:"fin_retransmissions"`
	RSTs               int            `yaml:"rsts"`
	IgnoredRSTs        int            `yaml:"ignored_rsts"`
	TimeWaitReuses     int            `yaml:"time_wait_reuses"`
	Duels              int            `yaml:"duels"`
	DuelSegments       int            `yaml:"duel_segments"`
	DuelSeconds        float64        `yaml:"duel_seconds"`
	DuelsAfterWorkload int            `yaml:"duels_after_workload"`
	Drops              int            `yaml:"drops"`
}

// fillResults copies the summary's figures and the analysis' totals
// into the record.
func (r *Record) fillResults(s *Summary, rep *analysis.Report) {
	res := &r.Results
	res.ClientStopped = s.Stop().UTC()
	n, last := s.AfterStop()
	res.AfterStop, res.LastAfterStop = n, ""
	if n > 0 {
		res.LastAfterStop = last.Round(time.Millisecond).String()
	}
	if rep == nil {
		return
	}
	t := &rep.Totals
	closes := map[string]int{}
	for k, v := range t.Closes {
		if v > 0 {
			closes[k] = v
		}
	}
	res.Analysis = AnalysisFigures{
		Segments: t.Segments, Connections: t.Connections, CleanCloses: t.CleanCloses, Closes: closes,
		FailedRequests: t.FailedRequests, Retransmissions: t.Retransmissions, FINRetransmissions: t.FINRetransmissions,
		RSTs: t.RSTs, IgnoredRSTs: t.IgnoredRSTs, TimeWaitReuses: t.TimeWaitReuses,
		Duels: t.Duels, DuelSegments: t.DuelSegments, DuelSeconds: math.Round(float64(t.DuelSeconds)*1000) / 1000,
		DuelsAfterWorkload: t.DuelsAfterWorkload, Drops: t.Drops,
	}
}

// write writes run.yaml into dir, listing the files the directory holds.
func (r *Record) write(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("lab: run record: %w", err)
	}
	r.Files = r.Files[:0]
	for _, e := range entries {
		if e.IsDir() {
			sub, _ := os.ReadDir(filepath.Join(dir, e.Name()))
			for _, f := range sub {
				r.Files = append(r.Files, e.Name()+"/"+f.Name())
			}
			continue
		}
		r.Files = append(r.Files, e.Name())
	}
	if !contains(r.Files, FileRecord) {
		r.Files = append(r.Files, FileRecord)
	}
	sort.Strings(r.Files)
	b, err := yaml.Marshal(r)
	if err != nil {
		return fmt.Errorf("lab: run record: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, FileRecord), b, 0o644); err != nil {
		return fmt.Errorf("lab: run record: %w", err)
	}
	return nil
}

// ReadRecord reads a run.yaml.
func ReadRecord(path string) (Record, error) {
	var r Record
	b, err := os.ReadFile(path)
	if err != nil {
		return r, fmt.Errorf("lab: %w", err)
	}
	if err := yaml.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("lab: %s: %w", path, err)
	}
	return r, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
