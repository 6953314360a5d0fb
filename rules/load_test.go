package rules

import (
	"context"
	"errors"
	"fmt"
	"github.com/closeduel/closeduel/nfq"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const smallFile = "experiment: t\nabout: A test.\nrules: []\n"

func TestLoadRefusesWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	zero := filepath.Join(dir, "zero.yaml")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, want string }{
		{"symlink to /dev/zero", zero, "zero.yaml: not a regular file (a character device); a rule file must be one"},
		{"FIFO", fifo, "fifo.yaml: not a regular file (a FIFO); a rule file must be one (to read a pipe, ask for it: --allow-pipe)"},
		{"directory", dir, "not a regular file (a directory)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := Load(context.Background(), tc.path, LoadOptions{})
				done <- err
			}()
			select {
			case err := <-done:
				var le *LimitError
				if !errors.As(err, &le) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Load: %v; want a LimitError saying %q", err, tc.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Load did not return within 5 s")
			}
		})
	}
}

func TestLoadRefusesFilesOverTheLimits(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte(smallFile+"# "+strings.Repeat("x", MaxFileBytes)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadFile(big)
	if want := fmt.Sprintf("rules: %s: %d bytes, more than the limit of %d for a rule file", big, MaxFileBytes+len(smallFile)+3, MaxFileBytes); err == nil || err.Error() != want {
		t.Errorf("big file: %v\nwant %s", err, want)
	}

	var b strings.Builder
	b.WriteString("experiment: t\nabout: A test.\nrules:\n")
	for i := range MaxRules + 1 {
		fmt.Fprintf(&b, "  - {name: r%d, do: pass}\n", i)
	}
	many := filepath.Join(dir, "many.yaml")
	if err := os.WriteFile(many, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = LoadFile(many)
	if want := fmt.Sprintf("rules: %s:4:3: rules: %d rules, more than the limit of %d for a rule file (every rule is tried on every packet)", many, MaxRules+1, MaxRules); err == nil || err.Error() != want {
		t.Errorf("many rules: %v\nwant %s", err, want)
	}
}

func TestLoadWarnsWhenOthersMayWriteTheFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "open.yaml")
	if err := os.WriteFile(p, []byte(smallFile), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := LoadFile(p)
	if err != nil || len(f.Warnings) != 0 {
		t.Fatalf("mode 0644: %v, warnings %q", err, f.Warnings)
	}
	if err := os.Chmod(p, 0o666); err != nil {
		t.Fatal(err)
	}
	f, err = LoadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Warnings) != 1 || !strings.Contains(f.Warnings[0], "open.yaml is writable by every user (mode 0666)") {
		t.Errorf("mode 0666: warnings %q", f.Warnings)
	}
}

func TestLoadOfAFIFOEndsWhenCancelled(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("no writer", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := Load(ctx, fifo, LoadOptions{AllowPipe: true})
			done <- err
		}()
		time.Sleep(100 * time.Millisecond)
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Load: %v; want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Load did not return within 5 s of the cancel")
		}
	})
	t.Run("writer that never finishes", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := Load(ctx, fifo, LoadOptions{AllowPipe: true})
			done <- err
		}()
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		w.WriteString("experiment: t\n")
		time.Sleep(100 * time.Millisecond)
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Load: %v; want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Load did not return within 5 s of the cancel")
		}
	})
	t.Run("writer that finishes", func(t *testing.T) {
		done := make(chan error, 1)
		go func() {
			f, err := Load(context.Background(), fifo, LoadOptions{AllowPipe: true})
			if err == nil && f.Experiment != "t" {
				err = fmt.Errorf("experiment %q", f.Experiment)
			}
			done <- err
		}()
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		w.WriteString(smallFile)
		w.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestAboutIsEscapedForTheTerminal(t *testing.T) {
	f, err := Parse("t.yaml", []byte("experiment: t\nabout: \"red \\e[31mtext\\0 and \\u202e reversed, caf\\u00e9\"\nrules: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := `red \x1b[31mtext\x00 and \u202e reversed, café`; f.About != want {
		t.Errorf("About = %q\nwant   %q", f.About, want)
	}
}

// BenchmarkDecideAtTheRuleLimit decides segments against MaxRules rules
// none of which matches (every rule is tried): the cost per packet the
// limit allows. Compare with BenchmarkDecide (a handful of rules).
func BenchmarkDecideAtTheRuleLimit(b *testing.B) {
	var src strings.Builder
	src.WriteString(head)
	for i := range MaxRules {
		fmt.Fprintf(&src, "  - { name: r%d, when: { from: client, flags: FIN+URG, payload: \">%d\" }, do: drop }\n", i, i)
	}
	d := NewDecider(mustParse(b, src.String()), Options{})
	ps := allocPackets(b)
	var dec nfq.Decision
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p := ps[i%len(ps)]
		if i%len(ps) == 0 {
			for _, q := range ps {
				q.Time = q.Time.Add(10 * time.Minute)
			}
		}
		dec = nfq.Decision{}
		d.Decide(p, &dec)
	}
}

func TestReadLimitedRefusesMoreThanTheLimit(t *testing.T) {
	_, err := ReadLimited(context.Background(), "stdin", strings.NewReader(strings.Repeat("#", MaxFileBytes+1)))
	if want := fmt.Sprintf("rules: stdin: more than %d bytes (the limit for a rule file)", MaxFileBytes); err == nil || err.Error() != want {
		t.Errorf("ReadLimited: %v, want %s", err, want)
	}
	b, err := ReadLimited(context.Background(), "stdin", strings.NewReader(smallFile))
	if err != nil || string(b) != smallFile {
		t.Errorf("ReadLimited of a small file: %q, %v", b, err)
	}
}

// TestNoControlCharacterReachesTheTerminal: what check prints of a file
// (its errors, its description) carries no raw control character, however
// the file spells them.
func TestNoControlCharacterReachesTheTerminal(t *testing.T) {
	for _, src := range []string{
		"experiment: t\nabout: x\n\"\\e[31mred\": 1\nrules:\n  - { name: a, do: \"\\e[31mdrop\" }\n  - { name: b, when: { from: \"\\e]0;title\\a\" }, do: pass }\n",
		"experiment: t\nabout: \"\\e[2J\\0 cleared\"\nrules:\n  - { name: a, when: { payload: \"\\e[1m>0\" }, do: pass }\n",
		"experiment: t\nabout: \"\\e[2J\\0 cleared\"\nrules: []\n",
	} {
		f, err := Parse("t.yaml", []byte(src))
		var out []string
		if err != nil {
			out = append(out, err.Error())
		} else {
			out = append(append(out, f.About), f.Describe()...)
		}
		for _, l := range out {
			for _, r := range l {
				if r < 0x20 && r != '\n' || r == 0x7f {
					t.Errorf("raw control character %#x in %q", r, l)
				}
			}
		}
	}
}
