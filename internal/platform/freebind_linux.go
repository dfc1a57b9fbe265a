package platform

import (
	"syscall"
)

// FreeBindControl sets IP_FREEBIND (and IPV6_FREEBIND) so a listener can
// bind an address that is not configured yet (vlmcsd -F1).
func FreeBindControl(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_IP, syscall.IP_FREEBIND, 1)
		if serr != nil {
			// IPV6_FREEBIND (78) for IPv6-only sockets.
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_IPV6, 78, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
}
