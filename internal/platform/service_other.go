//go:build !windows

package platform

import (
	"errors"
	"log/slog"
)

// ErrNotWindows is returned by the Windows service functions elsewhere.
var ErrNotWindows = errors.New("platform: Windows services are available only on Windows")

// ServiceConfig describes a Windows service to install.
type ServiceConfig struct {
	Name        string   // service name, also the event log source
	DisplayName string   // name shown by services.msc
	Description string   // description shown by services.msc
	Account     string   // account the service runs as ("" = LocalSystem)
	Password    string   // password of Account (none for built-in accounts)
	Manual      bool     // start on demand instead of at boot
	Args        []string // arguments after the executable's path
}

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
