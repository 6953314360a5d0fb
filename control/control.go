package control

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Handler carries out one command (its words) and returns the answer.
type Handler func(args []string) (string, error)

// Server listens on a Unix socket and hands each command to a Handler.
type Server struct {
	path string
	ln   net.Listener
	h    Handler
	wg   sync.WaitGroup
}

// maxLine bounds a command line.
const maxLine = 4096

// DefaultPath is the socket of the run on queue n.
func DefaultPath(queue uint16) string {
	return fmt.Sprintf("/run/closeduel/queue-%d.sock", queue)
}

// Listen creates the socket (removing a stale one left by a crashed run)
// and starts serving. Close stops it and removes the socket.
func Listen(path string, h Handler) (*Server, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("control: %s is in use by another closeduel run", path)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control: listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control: %w", err)
	}
	s := &Server{path: path, ln: ln, h: h}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(c)
		}()
	}
}

func (s *Server) handle(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReaderSize(io.LimitReader(c, maxLine), maxLine).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintf(c, "error: read command: %v\n", err)
		return
	}
	args := strings.Fields(line)
	if len(args) == 0 {
		fmt.Fprintln(c, "error: empty command")
		return
	}
	out, err := s.h(args)
	if err != nil {
		fmt.Fprintf(c, "error: %v\n", err)
		return
	}
	if out != "" && !strings.HasSuffix(out, "\n") {
		out += "\n"
	}
	fmt.Fprint(c, "ok\n"+out)
}

// Close stops listening, waits for commands in progress and removes the
// socket.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.wg.Wait()
	os.Remove(s.path)
	return err
}

// Send sends one command to the server at path and returns its answer; an
// answer that starts with "error:" comes back as an error.
func Send(ctx context.Context, path string, args []string) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return "", fmt.Errorf("control: no closeduel run listens on %s: %w", path, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintln(c, strings.Join(args, " ")); err != nil {
		return "", fmt.Errorf("control: send: %w", err)
	}
	out, err := io.ReadAll(c)
	if err != nil {
		return "", fmt.Errorf("control: read answer: %w", err)
	}
	ans := string(out)
	if msg, ok := strings.CutPrefix(ans, "error: "); ok {
		return "", errors.New(strings.TrimSpace(msg))
	}
	return strings.TrimPrefix(ans, "ok\n"), nil
}
