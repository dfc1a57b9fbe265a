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
