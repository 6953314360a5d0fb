package verdictlog

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/closeduel/closeduel/internal/ring"
	"github.com/closeduel/closeduel/nfq"
)

// Defaults for the zero Config fields.
const (
	DefaultSnapLen = 1600  // bytes of each packet kept in the pcapng: a whole frame
	DefaultBuffer  = 65536 // events in flight between Record and the files
)

// Limits on Config values.
const (
	MaxSnapLen = 262144  // as tcpdump's
	MaxBuffer  = 1 << 24 // records in flight
)

const (
	flushInterval = 100 * time.Millisecond // how much a crash can lose
	outBufSize    = 256 << 10              // bytes buffered per file before a write(2)
	closing       = math.MinInt64 / 2      // added to Writer.users by Close
)

// Config says where the log goes. The zero value of each field but the
// paths means its default.
type Config struct {
	// JSONPath is the JSON Lines verdict log; "" writes none.
	JSONPath string
	// PcapPath is the pcapng capture with one frame per event; "" writes
	// none. At least one of the paths must be set.
	PcapPath string
	// SnapLen is how many bytes of each packet the pcapng keeps (default
	// DefaultSnapLen); longer packets are cut and their original length
	// recorded.
	SnapLen int
	// Buffer is how many events can wait for the writer goroutine (default
	// DefaultBuffer). Events that find it full are lost and counted. The
	// Writer preallocates Buffer slots of SnapLen bytes each when it writes
	// a pcapng, so this is also its memory bound: about Buffer*(SnapLen+300)
	// bytes once the ring has gone round.
	Buffer int
	// Version is closeduel's version, written in the start record and in
	// the pcapng section header's shb_userappl ("closeduel <Version>").
	Version string
	// Overwrite replaces existing files; by default Open refuses to
	// overwrite a file, so no earlier run's log is lost.
	Overwrite bool
	// Prefault touches every page of the pcapng's slots in Open, so
	// Record never takes a page fault on them (by default the kernel maps
	// them as slots first get used: on the engine's thread, a fault every
	// two or three packets until the ring has gone round once). It brings
	// forward the memory a long run reaches anyway; a short one (a lab
	// cell) would never use most of it.
	Prefault bool
}

// Option changes how Open builds a Writer.
type Option func(*options)

type options struct {
	now  func() time.Time
	gate <-chan struct{}                          // tests: writer goroutine waits for it
	wrap func(name string, w io.Writer) io.Writer // tests: wraps the files
}

// WithClock sets the clock that dates the start and summary records and
// the pcapng statistics (default time.Now). Event records carry the
// engine's own times.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// withWriterGate holds the writer goroutine until gate is closed (or Close
// is called), so tests can fill the ring.
func withWriterGate(gate <-chan struct{}) Option { return func(o *options) { o.gate = gate } }

// withOutputWrapper wraps each output file ("json" or "pcap") in tests.
func withOutputWrapper(wrap func(name string, w io.Writer) io.Writer) Option {
	return func(o *options) { o.wrap = wrap }
}

// Stats counts what became of the events. Each field is read atomically;
// while the engine runs they may be a few records apart from each other,
// after Close they are final and Recorded == Written + Lost + Failed.
type Stats struct {
	// Recorded is the number of events passed to Record before Close.
	Recorded uint64
	// Written is the number of events written to every configured file
	// and flushed (every 100 ms and at Close), so it lags a little.
	Written uint64
	// Lost is the number of events that could not be queued because all
	// Buffer slots were in use; the log marks where (see SCHEMA.md).
	Lost uint64
	// Failed is the number of queued events that did not reach every
	// file: a write failed, or a flush failed while they were buffered.
	Failed uint64
	// Errors is the number of failed writes, flushes and closes, of
	// event and other records alike.
	Errors uint64
	// Late is the number of Record, RulesLoaded and Toggled calls made
	// after Close; they are not logged.
	Late uint64
	// LastError is the latest failed write or flush, "" when none.
	LastError string
}

// Writer writes the verdict log. It is an nfq.Recorder: Record copies the
// event into a preallocated slot and returns at once; a writer goroutine
// does the file I/O. All methods are safe for concurrent use.
type Writer struct {
	ring    *ring.Ring[record]
	users   atomic.Int64 // Record calls in progress; negative once closing
	lost    atomic.Uint64
	late    atomic.Uint64
	written atomic.Uint64
	failed  atomic.Uint64
	errs    atomic.Uint64
	lastErr atomic.Pointer[string]
	parked  atomic.Bool // the writer goroutine waits for work
	wakeAt  uint64      // queued events that wake a parked writer
	wake    chan struct{}
	done    chan struct{} // closed by Close
	exited  chan struct{} // closed by the writer goroutine
	now     func() time.Time
	gate    <-chan struct{}

	mu      sync.Mutex
	closed  bool
	side    []control // rules and toggle records waiting for their turn
	sideN   atomic.Int64
	summary map[string]uint64

	// Owned by the writer goroutine (and by Open before it starts).
	json, pcapFile *os.File
	jw             *fileOut
	pcap           *pcapOut
	line           []byte    // reused JSON line
	sideOut        []control // reused
	reportedLost   uint64
	unflushed      uint64 // events in the file buffers, not yet flushed
	firstErr       error
}

// control is a rules or toggle record. pos is the ring position it
// precedes: it is written after every event queued before it.
type control struct {
	pos        uint64
	toggle     bool
	mitigation bool // a mitigation record: rule is its name
	t          int64
	file       string
	sha256     string
	experiment string
	rule       string
	enabled    bool
}

var _ nfq.Recorder = (*Writer)(nil)

// Open creates the files named in cfg, writes the start record (and the
// pcapng section header and interface), and starts the writer goroutine.
// It refuses to overwrite existing files unless cfg.Overwrite is set.
func Open(cfg Config, opts ...Option) (*Writer, error) {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	w := &Writer{
		ring:    ring.New[record](cfg.Buffer),
		wakeAt:  uint64(max(1, cfg.Buffer/16)),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		exited:  make(chan struct{}),
		now:     o.now,
		gate:    o.gate,
		line:    make([]byte, 0, 1024),
		summary: make(map[string]uint64),
	}
	start := w.now()
	var created []string
	fail := func(err error) (*Writer, error) {
		for _, f := range []*os.File{w.json, w.pcapFile} {
			if f != nil {
				f.Close()
			}
		}
		for _, name := range created {
			os.Remove(name)
		}
		return nil, err
	}
	wrap := func(name string, f *os.File) io.Writer {
		if o.wrap != nil {
			return o.wrap(name, f)
		}
		return f
	}
	if cfg.JSONPath != "" {
		f, isNew, err := create(cfg.JSONPath, cfg.Overwrite)
		if err != nil {
			return fail(err)
		}
		w.json = f
		if isNew {
			created = append(created, cfg.JSONPath)
		}
		w.jw = newFileOut(wrap("json", f), f, outBufSize)
		w.jw.Write(appendStart(w.line[:0], start.UnixNano(), cfg.Version))
		if err := w.jw.Flush(); err != nil {
			return fail(fmt.Errorf("verdictlog: write %s: %w", cfg.JSONPath, err))
		}
	}
	if cfg.PcapPath != "" {
		f, isNew, err := create(cfg.PcapPath, cfg.Overwrite)
		if err != nil {
			return fail(err)
		}
		w.pcapFile = f
		if isNew {
			created = append(created, cfg.PcapPath)
		}
		p, err := newPcapOut(newFileOut(wrap("pcap", f), f, outBufSize), cfg.SnapLen, cfg.Version, start)
		if err != nil {
			return fail(fmt.Errorf("verdictlog: write %s: %w", cfg.PcapPath, err))
		}
		w.pcap = p
		// One backing array for every slot's packet bytes: a single
		// allocation whose pages the kernel maps as slots get used, or
		// now (Prefault).
		data := make([]byte, cfg.Buffer*cfg.SnapLen)
		if cfg.Prefault {
			for i := 0; i < len(data); i += 4096 {
				data[i] = 0
			}
		}
		for i := range w.ring.Len() {
			w.ring.At(i).data = data[i*cfg.SnapLen : i*cfg.SnapLen : (i+1)*cfg.SnapLen]
		}
	}
	go w.run()
	return w, nil
}

// fill checks c and applies the defaults.
func (c *Config) fill() error {
	switch {
	case c.JSONPath == "" && c.PcapPath == "":
		return errors.New("verdictlog: no output: set JSONPath, PcapPath or both")
	case c.JSONPath == c.PcapPath:
		return fmt.Errorf("verdictlog: JSONPath and PcapPath are the same file %q", c.JSONPath)
	case c.SnapLen < 0 || c.SnapLen > MaxSnapLen:
		return fmt.Errorf("verdictlog: SnapLen %d is outside 0..%d", c.SnapLen, MaxSnapLen)
	case c.Buffer < 0 || c.Buffer > MaxBuffer:
		return fmt.Errorf("verdictlog: Buffer %d is outside 0..%d", c.Buffer, MaxBuffer)
	}
	if c.SnapLen == 0 {
		c.SnapLen = DefaultSnapLen
	}
	if c.Buffer == 0 {
		c.Buffer = DefaultBuffer
	}
	return nil
}

// create opens name for writing; isNew reports whether it did not exist.
func create(name string, overwrite bool) (f *os.File, isNew bool, err error) {
	flag := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if overwrite {
		_, statErr := os.Lstat(name)
		isNew = errors.Is(statErr, fs.ErrNotExist)
		flag = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	} else {
		isNew = true
	}
	f, err = os.OpenFile(name, flag, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return nil, false, fmt.Errorf("verdictlog: %s already exists; not overwriting an earlier log: %w", name, err)
	}
	if err != nil {
		return nil, false, fmt.Errorf("verdictlog: create log: %w", err)
	}
	return f, isNew, nil
}

// Record queues ev for the log. It copies what it needs, never blocks and,
// once the ring has been used, never allocates. When every slot is in use
// the event is counted as lost.
func (w *Writer) Record(ev *nfq.Event) {
	if w.users.Add(1) < 0 {
		w.users.Add(-1)
		w.late.Add(1)
		return
	}
	s, pos := w.ring.Reserve()
	if s == nil {
		w.lost.Add(1)
		w.wakeWriter()
		w.users.Add(-1)
		return
	}
	s.Value.fill(ev)
	s.Value.lostBefore = w.lost.Load()
	s.Publish(pos)
	if w.parked.Load() && pos+1-w.ring.Released() >= w.wakeAt {
		w.wakeWriter()
	}
	w.users.Add(-1)
}

// wakeWriter wakes the writer goroutine if it is parked.
func (w *Writer) wakeWriter() {
	if w.parked.CompareAndSwap(true, false) {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// RulesLoaded logs that the rule file file (whose SHA-256 is sha256, in
// hex), defining the experiment experiment, was loaded at t. The record
// comes after every event recorded before the call and before every event
// recorded after it returns. Like Toggled it may be called from any
// goroutine, never waits for the disk and is never lost: it waits in a
// short list, not in the ring.
func (w *Writer) RulesLoaded(t time.Time, file, sha256, experiment string) {
	w.addControl(control{t: t.UnixNano(), file: file, sha256: sha256, experiment: experiment})
}

// Toggled logs that rule was switched on (enabled) or off at t, placed in
// the log like RulesLoaded's record.
func (w *Writer) Toggled(t time.Time, rule string, enabled bool) {
	w.addControl(control{toggle: true, t: t.UnixNano(), rule: rule, enabled: enabled})
}

// Mitigation logs that the named middlebox mitigation was switched on or
// off at t, placed in the log like RulesLoaded's record.
func (w *Writer) Mitigation(t time.Time, name string, on bool) {
	w.addControl(control{mitigation: true, t: t.UnixNano(), rule: name, enabled: on})
}

func (w *Writer) addControl(c control) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		w.late.Add(1)
		return
	}
	c.pos = w.ring.Reserved()
	w.side = append(w.side, c)
	w.sideN.Add(1)
	w.mu.Unlock()
	w.wakeWriter()
}

// Summary sets counters for the summary record that Close writes last
// (Close writes one, with the lost count, even when Summary was never
// called); later calls add keys and replace values, calls after Close do
// nothing. The keys "v", "kind", "t", "lost" and "failed" are the record's own and
// are ignored here.
func (w *Writer) Summary(fields map[string]uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	for k, v := range fields {
		switch k {
		case "v", "kind", "t", "lost", "failed":
			continue
		}
		w.summary[k] = v
	}
}

// Stats returns the counters so far; after Close they are final.
func (w *Writer) Stats() Stats {
	lost := w.lost.Load()
	return Stats{
		Recorded: w.ring.Reserved() + lost,
		Written:  w.written.Load(),
		Lost:     lost,
		Failed:   w.failed.Load(),
		Errors:   w.errs.Load(),
		Late:     w.late.Load(),
		LastError: func() string {
			if p := w.lastErr.Load(); p != nil {
				return *p
			}
			return ""
		}(),
	}
}

// Lost returns how many events could not be queued (Stats().Lost).
func (w *Writer) Lost() uint64 { return w.lost.Load() }

// Close stops taking events, writes every queued one, the summary record
// and the pcapng interface statistics, flushes and closes the files. It
// returns the first write error of the Writer's life; later calls return
// the same. Record calls racing with Close are either logged or counted as
// Late.
func (w *Writer) Close() error {
	w.mu.Lock()
	first := !w.closed
	w.closed = true
	w.mu.Unlock()
	if first {
		w.users.Add(closing)
		for w.users.Load() != closing {
			runtime.Gosched() // a Record call is finishing
		}
		close(w.done)
	}
	<-w.exited
	return w.firstErr
}

// run is the writer goroutine.
func (w *Writer) run() {
	defer close(w.exited)
	if w.gate != nil {
		select {
		case <-w.gate:
		case <-w.done:
		}
	}
	tick := time.NewTicker(flushInterval)
	defer tick.Stop()
	for {
		w.parked.Store(true)
		if w.ring.Peek() != nil && w.ring.Pending() >= w.wakeAt {
			// Busy: no need to sleep, but flush on time all the same.
			w.parked.Store(false)
			w.drain()
			select {
			case <-tick.C:
				w.flush()
			default:
			}
			continue
		}
		select {
		case <-w.wake:
			w.parked.Store(false)
			w.drain()
		case <-tick.C:
			w.parked.Store(false)
			w.drain()
			w.flush()
		case <-w.done:
			w.parked.Store(false)
			w.finish()
			return
		}
	}
}

// drain writes every published event, with the control records and gap
// markers due before each, and the control records due after the last.
func (w *Writer) drain() {
	for {
		s := w.ring.Peek()
		if s == nil {
			break
		}
		w.writeControls(w.ring.Released())
		w.writeEvent(&s.Value)
		w.ring.Release(s)
	}
	w.writeControls(w.ring.Released())
}

// writeControls writes the control records queued before ring position pos.
func (w *Writer) writeControls(pos uint64) {
	if w.sideN.Load() == 0 {
		return
	}
	w.mu.Lock()
	n := 0
	for n < len(w.side) && w.side[n].pos <= pos {
		n++
	}
	w.sideOut = append(w.sideOut[:0], w.side[:n]...)
	w.side = slices.Delete(w.side, 0, n)
	w.sideN.Add(int64(-n))
	w.mu.Unlock()
	for i := range w.sideOut {
		c := &w.sideOut[i]
		if c.mitigation {
			w.line = appendMitigation(w.line[:0], c)
		} else if c.toggle {
			w.line = appendToggle(w.line[:0], c)
		} else {
			w.line = appendRules(w.line[:0], c)
		}
		w.writeJSON()
		*c = control{}
	}
}

// writeEvent writes one event record, preceded by a gap marker when
// events were lost since the last one. The record goes into every file's
// buffer or, when one is full, after a flush of them all: every event
// belongs to one flush, which settles it as written or failed.
func (w *Writer) writeEvent(r *record) {
	var drops uint64
	if r.lostBefore > w.reportedLost {
		drops = r.lostBefore - w.reportedLost
		w.reportedLost = r.lostBefore
		if w.jw != nil {
			w.line = appendLost(w.line[:0], r.arrived, drops, r.lostBefore)
			w.writeJSON()
		}
	}
	if w.jw != nil {
		w.line = appendEvent(w.line[:0], r)
	}
	if w.pcap != nil {
		w.pcap.encode(r, drops)
	}
	if (w.jw != nil && w.jw.full(len(w.line))) || (w.pcap != nil && w.pcap.out.full(len(w.pcap.block))) {
		w.flush()
	}
	if w.jw != nil {
		w.jw.Write(w.line)
	}
	if w.pcap != nil {
		w.pcap.out.Write(w.pcap.block)
		w.pcap.wrote()
	}
	w.unflushed++
}

// writeJSON adds w.line, a record that is not an event, to the JSON log.
func (w *Writer) writeJSON() {
	if w.jw == nil {
		return
	}
	if w.jw.full(len(w.line)) {
		w.flush()
	}
	w.jw.Write(w.line)
}

// fail counts a failed write and keeps the first error for Close and the
// latest for Stats.
func (w *Writer) fail(err error) {
	w.errs.Add(1)
	if w.firstErr == nil {
		w.firstErr = err
	}
	msg := err.Error()
	w.lastErr.Store(&msg)
}

// flush writes the file buffers out and settles the buffered events as
// written or failed.
func (w *Writer) flush() {
	ok := true
	if w.jw != nil {
		if err := w.jw.Flush(); err != nil {
			w.fail(fmt.Errorf("verdictlog: flush %s: %w", w.json.Name(), err))
			ok = false
		}
	}
	if w.pcap != nil {
		if err := w.pcap.flush(); err != nil {
			w.fail(fmt.Errorf("verdictlog: flush %s: %w", w.pcapFile.Name(), err))
			ok = false
		}
	}
	if ok {
		w.written.Add(w.unflushed)
	} else {
		w.failed.Add(w.unflushed)
	}
	w.unflushed = 0
}

// finish runs once Close has stopped every Record call: it writes what is
// left, the summary and the statistics, and closes the files.
func (w *Writer) finish() {
	for w.ring.Pending() > 0 {
		w.drain()
		if w.ring.Pending() > 0 {
			runtime.Gosched() // unreachable: Close waited for every Record
		}
	}
	w.writeControls(math.MaxUint64)
	// Settle every event first, so the closing records count them all.
	w.flush()
	end := w.now()
	lost, failed := w.lost.Load(), w.failed.Load()
	if w.jw != nil {
		if lost > w.reportedLost {
			w.line = appendLost(w.line[:0], end.UnixNano(), lost-w.reportedLost, lost)
			w.writeJSON()
		}
		w.mu.Lock()
		keys := make([]string, 0, len(w.summary))
		for k := range w.summary {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		w.line = appendSummary(w.line[:0], end.UnixNano(), keys, w.summary, lost, failed)
		w.mu.Unlock()
		w.writeJSON()
	}
	w.reportedLost = lost
	if w.pcap != nil {
		if err := w.pcap.finish(end, w.ring.Reserved()+lost, lost+failed); err != nil {
			w.fail(fmt.Errorf("verdictlog: write %s: %w", w.pcapFile.Name(), err))
		}
	}
	w.flush()
	for _, f := range []*os.File{w.json, w.pcapFile} {
		if f == nil {
			continue
		}
		if err := f.Close(); err != nil {
			w.fail(fmt.Errorf("verdictlog: close log: %w", err))
		}
	}
}
