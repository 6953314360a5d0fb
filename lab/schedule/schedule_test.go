package schedule

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Schedule
		wantErr bool
	}{
		{name: "single", in: "1s", want: Schedule{time.Second}},
		{name: "repeat", in: "2x1s,3x200ms", want: Schedule{time.Second, time.Second, 200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond}},
		{name: "list with spaces", in: " 1s, 500ms ,0s", want: Schedule{time.Second, 500 * time.Millisecond, 0}},
		{name: "empty", in: "", wantErr: true},
		{name: "bad count", in: "0x1s", wantErr: true},
		{name: "bad duration", in: "3xsoon", wantErr: true},
		{name: "negative", in: "-1s", wantErr: true},
		{name: "too many", in: "2000000x1ms", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Parse(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestDefault(t *testing.T) {
	s, err := Parse(Default)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Requests(), 51; got != want {
		t.Errorf("requests = %d, want %d", got, want)
	}
	if got, want := s.Duration(), 18*time.Second; got != want {
		t.Errorf("duration = %s, want %s", got, want)
	}
	if got := s.String(); got != Default {
		t.Errorf("String() = %q, want %q", got, Default)
	}
	offs := s.Offsets()
	if diff := cmp.Diff([]time.Duration{0, time.Second, 10 * time.Second, 10*time.Second + 200*time.Millisecond}, []time.Duration{offs[0], offs[1], offs[10], offs[11]}); diff != "" {
		t.Errorf("offsets (-want +got):\n%s", diff)
	}
}
