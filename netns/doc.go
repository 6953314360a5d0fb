// Package netns creates, enters and removes named network namespaces (the
// ones `ip netns` keeps under /run/netns). Everything here needs root
// (CAP_SYS_ADMIN); on other systems the functions return errors.ErrUnsupported.
package netns
