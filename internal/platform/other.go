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
