package verdictlog

import (
	"io"
	"os"
)

// fileOut buffers whole records for one file and writes them in one go.
// Unlike a bufio.Writer it survives a failed write: the file is cut back
// to its last whole record (a full disk may take part of a write), the
// buffered records are dropped (the caller counts them) and the next
// flush tries again, so the file stays parseable up to its last record and
// fills up again once there is room.
type fileOut struct {
	w    io.Writer // the file, or a test's wrapper around it
	f    *os.File  // nil in tests that write to no file
	buf  []byte
	good int64 // bytes of whole records in the file
}

func newFileOut(w io.Writer, f *os.File, size int) *fileOut {
	return &fileOut{w: w, f: f, buf: make([]byte, 0, size)}
}

// Write appends p to the buffer; it never fails and never writes.
func (o *fileOut) Write(p []byte) (int, error) {
	o.buf = append(o.buf, p...)
	return len(p), nil
}

// full reports whether n more bytes would outgrow the buffer.
func (o *fileOut) full(n int) bool { return len(o.buf)+n > cap(o.buf) }

// Flush writes the buffer out. On an error the file is cut back to its
// last whole record and the buffer emptied: the records in it are lost.
func (o *fileOut) Flush() error {
	if len(o.buf) == 0 {
		return nil
	}
	n, err := o.w.Write(o.buf)
	o.buf = o.buf[:0]
	if err == nil {
		o.good += int64(n)
		return nil
	}
	if n > 0 && o.f != nil {
		if terr := o.f.Truncate(o.good); terr == nil {
			o.f.Seek(o.good, io.SeekStart)
		}
	}
	return err
}
