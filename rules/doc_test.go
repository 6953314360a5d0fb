package rules

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestLanguageDocExampleIsTrue checks that LANGUAGE.md's example file
// parses, validates against the schema, and is described as the document
// says.
func TestLanguageDocExampleIsTrue(t *testing.T) {
	doc, err := os.ReadFile("LANGUAGE.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```(yaml)?\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(blocks) < 2 || blocks[0][1] != "yaml" {
		t.Fatalf("LANGUAGE.md should open with a yaml example and its description; found %d blocks", len(blocks))
	}
	src, said := blocks[0][2], blocks[1][2]
	f, err := Parse("LANGUAGE.md", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := validateYAML(t, compileSchema(t), []byte(src)); err != nil {
		t.Errorf("the example does not validate against schema.json: %v", err)
	}
	if diff := cmp.Diff(strings.Split(strings.TrimSpace(said), "\n"), f.Describe()); diff != "" {
		t.Errorf("LANGUAGE.md's description of its example (-doc +Describe):\n%s", diff)
	}
}
