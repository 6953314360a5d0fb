package tcpstate

import "time"

// Time is an instant as a Tracker keeps it in its Conns and Endpoints:
// nanoseconds since the Tracker's epoch, a fixed instant 2^60 ns (about
// 36.5 years) before the first time the Tracker was given. 0 means never.
// It takes 8 bytes where a time.Time takes 24, and it keeps what the
// time.Time it came from measures with: the epoch is taken from the
// caller's first time, so with the engine's receive times (which carry a
// monotonic reading) the differences are monotonic, and with a capture's
// times (wall clock only) they are the wall clock's. Tracker.Time turns
// one back into a time.Time.
type Time int64

// epochLead is how long before the first time the epoch lies: far enough
// that earlier times in a capture (a clock stepped back, a packet stamped
// at the Unix epoch) stay distinct from never, near enough that a time
// with a monotonic reading keeps it (time.Time's wall field holds years
// 1885 to 2157).
const epochLead = 1 << 60

// IsZero reports whether t is never.
func (t Time) IsZero() bool { return t == 0 }

// Sub returns the duration t-u.
func (t Time) Sub(u Time) time.Duration { return time.Duration(t - u) }

// Add returns t+d.
func (t Time) Add(d time.Duration) Time { return t + Time(d) }

// Before reports whether t is before u.
func (t Time) Before(u Time) bool { return t < u }

// clock turns time.Time values into Times and back; its epoch is set by
// the first time it is given.
type clock struct {
	epoch time.Time
	set   bool
}

// stamp returns now as a Time (never 0: the epoch itself, which no caller
// passes in practice, moves by a nanosecond).
func (c *clock) stamp(now time.Time) Time {
	if !c.set {
		c.epoch, c.set = now.Add(-epochLead), true
	}
	v := Time(now.Sub(c.epoch))
	if v == 0 {
		v = -1
	}
	return v
}

// time returns t as a time.Time; never is the zero time.Time.
func (c *clock) time(t Time) time.Time {
	if t == 0 || !c.set {
		return time.Time{}
	}
	return c.epoch.Add(time.Duration(t))
}
