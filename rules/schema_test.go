package rules

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"slices"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/closeduel/closeduel/mitigate"
)

// The shipped files are checked against rules/schema.json by an
// independent validator, github.com/santhosh-tekuri/jsonschema/v6 (JSON
// Schema draft 2020-12), after converting the YAML to JSON.

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	data, err := os.ReadFile("schema.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validateYAML(t *testing.T, s *jsonschema.Schema, src []byte) error {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	return s.Validate(inst)
}

func TestLibraryValidatesAgainstSchema(t *testing.T) {
	s := compileSchema(t)
	for _, name := range LibraryNames() {
		t.Run(name, func(t *testing.T) {
			data, err := fs.ReadFile(Library(), name+".yaml")
			if err != nil {
				t.Fatal(err)
			}
			if err := validateYAML(t, s, data); err != nil {
				t.Errorf("%s.yaml does not validate against schema.json:\n%v", name, err)
			}
		})
	}
}

func TestSchemaRejectsWhatParseRejects(t *testing.T) {
	s := compileSchema(t)
	for _, src := range []string{
		head + "  - name: a\n    do: dorp\n",
		head + "  - name: a\n    whne: {}\n    do: drop\n",
		head + "  - name: a\n    when: { device: TIME_WAIT }\n    do: drop\n",
		head + "  - name: a\n    when: { flags: rst+ack }\n    do: drop\n",
		head + "  - name: a\n    do: { drop: true, delay: 1s }\n",
		head + "  - name: a\n    do: { delay: 300 }\n",
		head + "  - name: a\n    do: { inject: { flags: RST } }\n",
		head + "  - name: a\n    do: { hold-until-next: { nth: 2 } }\n",
		"experiment: t\nabout: x\n",
		"experiment: Bad Name\nabout: x\nrules: []\n",
	} {
		if _, err := Parse("t.yaml", []byte(src)); err == nil {
			t.Fatalf("Parse accepted:\n%s", src)
		}
		if err := validateYAML(t, s, []byte(src)); err == nil {
			t.Errorf("schema accepted what Parse rejects:\n%s", src)
		}
	}
}

// TestSchemaKnowsEveryKey keeps the schema and the parser's key tables
// from drifting apart.
func TestSchemaKnowsEveryKey(t *testing.T) {
	data, err := os.ReadFile("schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var sch struct {
		Properties map[string]any `json:"properties"`
		Defs       map[string]struct {
			Properties map[string]any `json:"properties"`
			OneOf      []struct {
				Properties map[string]any `json:"properties"`
				Enum       []string       `json:"enum"`
			} `json:"oneOf"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(data, &sch); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]any) []string {
		var out []string
		for k := range m {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	sorted := func(s ...[]string) []string {
		var out []string
		for _, x := range s {
			out = append(out, x...)
		}
		sort.Strings(out)
		return slices.Compact(out)
	}
	var doKeys []string
	for _, alt := range sch.Defs["do"].OneOf {
		doKeys = append(doKeys, keys(alt.Properties)...)
		doKeys = append(doKeys, alt.Enum...)
	}
	var params []string
	for _, p := range actionParams {
		params = append(params, p...)
	}
	for _, c := range []struct {
		name      string
		want, got []string
	}{
		{"file", sorted(fileKeys), keys(sch.Properties)},
		{"tracker", sorted(trackerKeys), keys(sch.Properties["tracker"].(map[string]any)["properties"].(map[string]any))},
		{"mitigations", sorted(mitigate.Names()), keys(sch.Properties["mitigations"].(map[string]any)["properties"].(map[string]any))},
		{"rule", sorted(ruleKeys), keys(sch.Defs["rule"].Properties)},
		{"when", sorted(whenKeys), sorted(keys(sch.Defs["conditions"].Properties), keys(sch.Defs["when"].Properties))},
		{"release", sorted(releaseKeys), keys(sch.Defs["conditions"].Properties)},
		{"do", sorted(actionNames, params), sorted(doKeys)},
		{"rewrite", sorted(rewriteKeys), keys(sch.Defs["rewrite"].Properties)},
		{"inject", sorted(injectKeys), keys(sch.Defs["inject"].Properties)},
	} {
		if diff := cmp.Diff(c.want, c.got); diff != "" {
			t.Errorf("%s keys (-parser +schema):\n%s", c.name, diff)
		}
	}
}
