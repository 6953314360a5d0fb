package lab

import (
	"errors"
	"fmt"
)

// errUnsupported is what the Linux-only parts return elsewhere.
var errUnsupported = fmt.Errorf("lab: the lab needs Linux (namespaces, taps, packet sockets): %w", errors.ErrUnsupported)
