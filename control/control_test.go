package control

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestCommandsReachTheHandlerAndAnswersComeBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.sock")
	var got [][]string
	s, err := Listen(path, func(args []string) (string, error) {
		got = append(got, args)
		if args[0] == "disable" && args[1] == "nope" {
			return "", errors.New(`unknown rule "nope" (did you mean "none"?)`)
		}
		return "done " + strings.Join(args, ","), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	out, err := Send(ctx, path, []string{"enable", "drop-final-ack"})
	if err != nil || out != "done enable,drop-final-ack\n" {
		t.Fatalf("enable: %q, %v", out, err)
	}
	_, err = Send(ctx, path, []string{"disable", "nope"})
	if err == nil || err.Error() != `unknown rule "nope" (did you mean "none"?)` {
		t.Fatalf("disable nope: error %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("handler saw %d commands, want 2", len(got))
	}
	if _, err := Listen(path, nil); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second listener on a live socket: %v, want an in-use error", err)
	}
}

func TestSendWithoutServerSaysSo(t *testing.T) {
	_, err := Send(context.Background(), filepath.Join(t.TempDir(), "none.sock"), []string{"status"})
	if err == nil || !strings.Contains(err.Error(), "no closeduel run listens") {
		t.Fatalf("got %v", err)
	}
}
