package rules

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/closeduel/closeduel/nfq"
	"github.com/closeduel/closeduel/segment"
	"github.com/gopacket/gopacket/layers"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite golden files and the fuzz seed corpus")

// FuzzParse checks properties of Parse on any input: errors carry
// positions inside the file; accepted files are described rule by rule,
// parse the same way twice, validate against schema.json, and run as a
// Decider whose decisions stay within the engine's contract.
func FuzzParse(f *testing.F) {
	schema := compileSchema(&testing.T{})
	script := fuzzScript(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz.yaml", data)
		lines := bytes.Count(data, []byte("\n")) + 1
		if err != nil {
			if file != nil {
				t.Fatal("Parse returned a File and an error")
			}
			errs := Errors(err)
			if len(errs) == 0 {
				t.Fatalf("error without position: %v", err)
			}
			for _, e := range errs {
				if e.Line < 1 || e.Line > lines || e.Column < 1 || e.File != "fuzz.yaml" || e.Msg == "" {
					t.Errorf("error at %d:%d of a %d-line file: %v", e.Line, e.Column, lines, e)
				}
			}
			for _, l := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(l, "rules: fuzz.yaml:") {
					t.Errorf("error line %q", l)
				}
			}
			return
		}
		desc := file.Describe()
		want := len(file.Rules) + 1 + len(file.describeLab())
		if len(file.Rules) == 0 {
			want++
		}
		if len(desc) != want {
			t.Errorf("Describe gave %d lines for %d rules", len(desc), len(file.Rules))
		}
		again, err := Parse("fuzz.yaml", data)
		if err != nil || strings.Join(again.Describe(), "\n") != strings.Join(desc, "\n") || again.SHA256 != file.SHA256 {
			t.Errorf("second Parse differs: %v", err)
		}
		names := map[string]bool{}
		for _, r := range file.Rules {
			if names[r.Name] || !namePattern.MatchString(r.Name) {
				t.Errorf("rule name %q duplicate or malformed", r.Name)
			}
			names[r.Name] = true
		}
		if err := validateAny(data, schema); err != nil {
			t.Errorf("Parse accepted a file the schema rejects: %v", err)
		}
		d := NewDecider(file, Options{MaxConns: 8})
		for _, s := range script {
			p := *s
			p.Data = append([]byte(nil), s.Data...)
			var dec nfq.Decision
			d.Decide(&p, &dec)
			checkDecision(t, &p, &dec)
			// The script's checksums are right: a rewrite keeps them so
			// without the engine's help.
			if dec.Modified && !segment.ChecksumsValid(p.Data, &p.Seg) {
				t.Errorf("rule %s left a bad checksum", dec.Rule)
			}
		}
	})
}

func checkDecision(t *testing.T, p *nfq.Packet, d *nfq.Decision) {
	t.Helper()
	switch {
	case d.Verdict != nfq.Accept && d.Verdict != nfq.Drop:
		t.Errorf("verdict %v", d.Verdict)
	case d.Delay < 0 || d.Delay > maxDelay:
		t.Errorf("delay %v", d.Delay)
	case d.NInjects < 0 || d.NInjects > nfq.MaxInjects:
		t.Errorf("%d injects", d.NInjects)
	case d.Modified && d.Action != "rewrite":
		t.Errorf("modified by %q", d.Action)
	case (d.Rule == "") != (d.Action == ""):
		t.Errorf("rule %q action %q", d.Rule, d.Action)
	case d.Dir != "" && d.Dir != "client>device" && d.Dir != "device>client":
		t.Errorf("dir %q", d.Dir)
	case d.HoldKey != 0 && d.Delay == 0:
		t.Error("hold without a bound")
	case d.Duplicates < 0 || d.Duplicates > maxDupCount:
		t.Errorf("%d duplicates", d.Duplicates)
	}
	if d.Modified {
		n := len(p.Data)
		dec, _ := segment.NewDecoder(layers.LinkTypeRaw)
		var s segment.Segment
		if err := dec.Decode(p.Data, &s); err != nil || len(p.Data) != n || s != p.Seg {
			t.Errorf("rewritten packet decodes as %+v (%v), want %+v", s, err, p.Seg)
		}
	}
}

func validateAny(data []byte, s *jsonschema.Schema) error {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return err
	}
	js, err := json.Marshal(v)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		return err
	}
	return s.Validate(inst)
}

// fuzzScript is a close with a reused tuple, in both directions, at
// growing times.
func fuzzScript(tb testing.TB) []*nfq.Packet {
	w := newWire(tb)
	var out []*nfq.Packet
	for i := range 2 {
		for _, s := range exchange() {
			w.now = w.now.Add(300 * time.Millisecond)
			out = append(out, w.pkt(s.from, s.flags, s.seq+uint32(i)*100000, s.ack+uint32(i)*100000, s.n))
		}
	}
	return out
}

// TestFuzzSeedCorpus writes the committed seed corpus (with -update) and
// checks that it holds every shipped experiment and every broken example.
func TestFuzzSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	seeds := map[string][]byte{}
	for _, name := range LibraryNames() {
		data, err := fs.ReadFile(Library(), name+".yaml")
		if err != nil {
			t.Fatal(err)
		}
		seeds["library-"+name] = data
	}
	for i, src := range brokenSources() {
		seeds[fmt.Sprintf("broken-%02d", i)] = []byte(src)
	}
	seeds["every-action"] = []byte(allocFile)
	for i, src := range packetPathFiles {
		seeds[fmt.Sprintf("rewrite-%d", i)] = []byte(src)
	}
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range seeds {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name := range seeds {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("seed %s missing from %s (run go test -run TestFuzzSeedCorpus -update)", name, dir)
		}
	}
}
