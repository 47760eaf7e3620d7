package api

import "golang.org/x/sys/unix"

// umask sets the process umask and returns the old one; it narrows the
// window in which a new socket could be opened by anyone but root.
func umask(m int) int { return unix.Umask(m) }
