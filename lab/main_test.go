package lab

import (
	"os"
	"testing"
)

// helperArg makes the test binary play the lab's helper subcommands, so
// that integration tests can use it as Config.Helper.
const helperArg = "lab-test-helper"

func TestMain(m *testing.M) {
	if code, ok := HelperMain(helperArg, os.Args[1:]); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// TestHelperMainLeavesOtherArgsAlone: HelperMain claims only its word, a
// known helper and --config with one value; the test binary's own flags
// and anything else go to the tests.
func TestHelperMainLeavesOtherArgsAlone(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"-test.run=X"},
		{"other-word", HelperClient, "--config", "{}"},
		{helperArg, "unknown", "--config", "{}"},
		{helperArg, HelperClient, "--cfg", "{}"},
		{helperArg, HelperClient, "--config"},
		{helperArg, HelperClient, "--config", "{}", "extra"},
	} {
		if code, ok := HelperMain(helperArg, args); ok {
			t.Errorf("HelperMain(%q) claimed the args (exit %d)", args, code)
		}
	}
	// A helper it claims whose config is not JSON: exit 1.
	if code, ok := HelperMain(helperArg, []string{helperArg, HelperClient, "--config", "{"}); !ok || code != 1 {
		t.Errorf("HelperMain with a bad config: exit %d, claimed %v; want exit 1, claimed", code, ok)
	}
}
