//go:build !unix

package platform

import "net"

// DropPrivileges is unsupported on this system.
func DropPrivileges(userName, groupName string) error {
	if userName == "" && groupName == "" {
		return nil
	}
	return ErrUnsupported
}

// SystemdListeners never finds listeners on this system.
func SystemdListeners() ([]net.Listener, error) { return nil, nil }

// Daemonize is not available here; the program stays in the foreground.
func Daemonize() (detached bool, ready func(error), err error) {
	return false, func(error) {}, nil
}

// ChownTo does nothing on this system.
func ChownTo(userName, groupName string, paths ...string) error { return nil }
