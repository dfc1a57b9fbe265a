// Package platform holds operating-system integration: dropping
// privileges, socket options, listeners handed over by systemd, and pid
// files. Files are build-tagged per system; unsupported features return
// ErrUnsupported.
package platform

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ErrUnsupported is returned where the system lacks a feature.
var ErrUnsupported = errors.New("platform: not supported on this system")

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

// WritePidFile writes the process id to path.
func WritePidFile(path string) error {
	return os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
}

// RemovePidFile removes path if it still holds this process's id.
func RemovePidFile(path string) {
	b, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid()) {
		os.Remove(path)
	}
}

// IDError names a user or group that could not be resolved.
type IDError struct {
	Kind, Name string
	Err        error
}

func (e *IDError) Error() string { return fmt.Sprintf("%s %q: %v", e.Kind, e.Name, e.Err) }
