//go:build unix

package platform

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// daemonEnv marks the detached child of Daemonize.
const daemonEnv = "KMSD_DETACHED_CHILD"

// Daemonize runs the program again as a detached child in a new session
// (vlmcsd without -D) and waits until the child reports that it started.
// In the parent it returns detached=true once the child is up (or the
// child's start-up error). In the child it returns detached=false and a
// ready function the child calls once, with nil after its listeners are
// open or with the error that stops it.
func Daemonize() (detached bool, ready func(error), err error) {
	if os.Getenv(daemonEnv) == "1" {
		os.Unsetenv(daemonEnv)
		pipe := os.NewFile(3, "ready")
		return false, func(err error) {
			if pipe == nil {
				return
			}
			if err != nil {
				fmt.Fprintln(pipe, "error:", err)
			} else {
				fmt.Fprintln(pipe, "ok")
			}
			pipe.Close()
			pipe = nil
		}, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return false, nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return false, nil, err
	}
	defer r.Close()
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return false, nil, err
	}
	defer null.Close()
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Args[0] = os.Args[0] // keep the personality (vlmcsd)
	cmd.Env = append(os.Environ(), daemonEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, null
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return false, nil, err
	}
	w.Close()
	done := make(chan string, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			line = "error: " + err.Error()
		}
		done <- strings.TrimSpace(line)
	}()
	select {
	case line := <-done:
		switch {
		case line == "ok":
			return true, nil, nil
		case strings.HasPrefix(line, "error: "):
			return true, nil, errors.New(strings.TrimPrefix(line, "error: "))
		default:
			return true, nil, errors.New("the detached process ended during start-up")
		}
	case <-time.After(30 * time.Second):
		return true, nil, errors.New("the detached process did not report start-up within 30 s")
	}
}
