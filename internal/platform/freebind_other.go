//go:build !linux

package platform

import "syscall"

// FreeBindControl is unsupported outside Linux.
func FreeBindControl(network, address string, c syscall.RawConn) error { return ErrUnsupported }
