package lab

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/closeduel/closeduel/analysis"
)

func TestRecordRoundTripAndAnalysisReadsIt(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileReport), []byte("report\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "wire"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, FileWire), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sched, _ := ParseSchedule("2x1s,3x200ms")
	start := time.Date(2026, 11, 24, 4, 0, 0, 123456789, time.UTC)
	var rec Record
	rec.Experiment, rec.Seed = "reuse", 42
	rec.WorkloadStart, rec.WorkloadEnd = start, start.Add(2600*time.Millisecond)
	rec.Device.Kind, rec.Device.Close = DeviceLinux, CloseAbort
	rec.Workload.Schedule = sched
	rec.Workload.Sysctls = map[string]string{sysctlPortRange: "40000 40001"}
	if err := rec.write(dir); err != nil {
		t.Fatal(err)
	}
	got, err := ReadRecord(filepath.Join(dir, FileRecord))
	if err != nil {
		t.Fatal(err)
	}
	rec.Files = []string{FileReport, FileRecord, FileWire} // sorted
	if diff := cmp.Diff(rec, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("run.yaml round trip (-want +got):\n%s", diff)
	}
	run, err := analysis.ReadRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !run.WorkloadStart.Equal(rec.WorkloadStart) || !run.WorkloadEnd.Equal(rec.WorkloadEnd) || run.Experiment != "reuse" {
		t.Errorf("analysis.ReadRun = %+v, want workload %v .. %v, experiment reuse", run, rec.WorkloadStart, rec.WorkloadEnd)
	}
}
