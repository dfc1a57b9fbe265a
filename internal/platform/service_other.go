//go:build !windows

package platform

import (
	"errors"
	"log/slog"
)

// ErrNotWindows is returned by the Windows service functions elsewhere.
var ErrNotWindows = errors.New("platform: Windows services are available only on Windows")

// InstallService is available only on Windows.
func InstallService(cfg ServiceConfig) ([]string, error) { return nil, ErrNotWindows }

// UninstallService is available only on Windows.
func UninstallService(name string) error { return ErrNotWindows }

// StartService is available only on Windows.
func StartService(name string) error { return ErrNotWindows }

// StopService is available only on Windows.
func StopService(name string) error { return ErrNotWindows }

// IsWindowsService is always false here.
func IsWindowsService() (bool, error) { return false, nil }

// RunService is available only on Windows.
func RunService(name string, body func(stop <-chan struct{}) int) error { return ErrNotWindows }

// NewEventLogHandler is available only on Windows.
func NewEventLogHandler(source string, level slog.Leveler) (slog.Handler, func() error, error) {
	return nil, nil, ErrNotWindows
}
