package lab

import "github.com/closeduel/closeduel/lab/schedule"

// Schedule is the workload's list of gaps (package schedule).
type Schedule = schedule.Schedule

// DefaultSchedule is the default workload rhythm (schedule.Default).
const DefaultSchedule = schedule.Default

// ParseSchedule parses a schedule as flags and rule files write it
// (schedule.Parse).
func ParseSchedule(s string) (Schedule, error) { return schedule.Parse(s) }
