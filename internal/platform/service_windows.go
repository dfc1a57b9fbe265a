//go:build windows

package platform

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/eventlog"
	"golang.org/x/sys/windows/svc/mgr"
)

// serviceTimeout bounds the wait for a service to start or stop.
const serviceTimeout = 30 * time.Second

// InstallService registers the running executable as a service with
// cfg.Args, restarting it after failures, and registers cfg.Name as an
// event log source. It returns warnings for settings the service manager
// refused without making the service unusable.
func InstallService(cfg ServiceConfig) (warnings []string, err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	m, err := connectManager()
	if err != nil {
		return nil, err
	}
	defer m.Disconnect()
	if s, err := m.OpenService(cfg.Name); err == nil {
		s.Close()
		return nil, fmt.Errorf("service %s already exists", cfg.Name)
	}
	start := uint32(mgr.StartAutomatic)
	if cfg.Manual {
		start = mgr.StartManual
	}
	s, err := m.CreateService(cfg.Name, exe, mgr.Config{
		DisplayName:      cfg.DisplayName,
		Description:      cfg.Description,
		StartType:        start,
		ErrorControl:     mgr.ErrorNormal,
		ServiceStartName: cfg.Account,
		Password:         cfg.Password,
	}, cfg.Args...)
	if err != nil {
		return nil, fmt.Errorf("create service %s: %w", cfg.Name, err)
	}
	defer s.Close()
	// Restart after 5 s, 30 s, then every minute; forget failures after a day.
	actions := []mgr.RecoveryAction{
		{Type: mgr.ServiceRestart, Delay: 5 * time.Second},
		{Type: mgr.ServiceRestart, Delay: 30 * time.Second},
		{Type: mgr.ServiceRestart, Delay: time.Minute},
	}
	if err := s.SetRecoveryActions(actions, 24*60*60); err != nil {
		s.Delete()
		return nil, fmt.Errorf("service %s recovery actions: %w", cfg.Name, err)
	}
	// A non-zero exit code (a configuration or listener error) also counts
	// as a failure, not only a crash. A manager without this setting
	// (Wine's) still restarts the service after a crash.
	if err := s.SetRecoveryActionsOnNonCrashFailures(true); errors.Is(err, windows.ERROR_INVALID_LEVEL) {
		warnings = append(warnings, fmt.Sprintf("the service manager cannot restart %s after a non-zero exit, only after a crash (%v)", cfg.Name, err))
	} else if err != nil {
		s.Delete()
		return nil, fmt.Errorf("service %s recovery actions: %w", cfg.Name, err)
	}
	err = eventlog.InstallAsEventCreate(cfg.Name, eventlog.Error|eventlog.Warning|eventlog.Info)
	if err != nil && !isKeyExists(err) {
		s.Delete()
		return nil, fmt.Errorf("event log source %s: %w", cfg.Name, err)
	}
	return warnings, nil
}

// isKeyExists reports the error eventlog.Install returns when the source
// is already registered (left by an earlier installation).
func isKeyExists(err error) bool {
	return err != nil && strings.Contains(err.Error(), "registry key already exists")
}

// UninstallService stops the service if it runs, deletes it and removes
// its event log source.
func UninstallService(name string) error {
	s, done, err := openService(name)
	if err != nil {
		return err
	}
	defer done()
	if st, err := s.Query(); err == nil && st.State != svc.Stopped {
		if err := stopAndWait(s); err != nil {
			return err
		}
	}
	if err := s.Delete(); err != nil {
		return fmt.Errorf("delete service %s: %w", name, err)
	}
	eventlog.Remove(name) // absent when installed by other means
	return nil
}

// StartService starts the service and waits until it runs; a service that
// stops during start-up returns its exit code as the error.
func StartService(name string) error {
	s, done, err := openService(name)
	if err != nil {
		return err
	}
	defer done()
	if err := s.Start(); err != nil {
		return fmt.Errorf("start service %s: %w", name, err)
	}
	deadline := time.Now().Add(serviceTimeout)
	for {
		st, err := s.Query()
		if err != nil {
			return fmt.Errorf("service %s: %w", name, err)
		}
		switch st.State {
		case svc.Running:
			return nil
		case svc.Stopped:
			return fmt.Errorf("service %s stopped during start-up (exit code %d, see the Application event log, source %s)",
				name, exitCode(st), name)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("service %s did not start within %v", name, serviceTimeout)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// StopService asks the service to stop and waits until it has.
func StopService(name string) error {
	s, done, err := openService(name)
	if err != nil {
		return err
	}
	defer done()
	return stopAndWait(s)
}

func stopAndWait(s *mgr.Service) error {
	st, err := s.Control(svc.Stop)
	if err != nil {
		return fmt.Errorf("stop service %s: %w", s.Name, err)
	}
	deadline := time.Now().Add(serviceTimeout)
	for st.State != svc.Stopped {
		if time.Now().After(deadline) {
			return fmt.Errorf("service %s did not stop within %v", s.Name, serviceTimeout)
		}
		time.Sleep(300 * time.Millisecond)
		if st, err = s.Query(); err != nil {
			return fmt.Errorf("service %s: %w", s.Name, err)
		}
	}
	return nil
}

func exitCode(st svc.Status) uint32 {
	if st.Win32ExitCode == uint32(windows.ERROR_SERVICE_SPECIFIC_ERROR) {
		return st.ServiceSpecificExitCode
	}
	return st.Win32ExitCode
}

// openService connects to the service manager and opens the service name;
// done closes both.
func openService(name string) (s *mgr.Service, done func(), err error) {
	m, err := connectManager()
	if err != nil {
		return nil, nil, err
	}
	s, err = m.OpenService(name)
	if err != nil {
		m.Disconnect()
		return nil, nil, fmt.Errorf("service %s: %w", name, err)
	}
	return s, func() { s.Close(); m.Disconnect() }, nil
}

func connectManager() (*mgr.Mgr, error) {
	m, err := mgr.Connect()
	if err != nil {
		if errors.Is(err, windows.ERROR_ACCESS_DENIED) {
			return nil, fmt.Errorf("service control manager: %w (run from an elevated prompt)", err)
		}
		return nil, fmt.Errorf("service control manager: %w", err)
	}
	return m, nil
}

// IsWindowsService reports whether the process was started by the service
// control manager. svc.IsWindowsService also requires session 0, which
// fails where the manager runs in another session (Windows containers,
// Wine), so a parent process named services.exe counts too.
func IsWindowsService() (bool, error) {
	if ok, err := svc.IsWindowsService(); ok || err != nil {
		return ok, err
	}
	return parentIsServiceManager()
}

// parentIsServiceManager reports whether the parent process's executable
// is services.exe.
func parentIsServiceManager() (bool, error) {
	snap, err := windows.CreateToolhelp32Snapshot(windows.TH32CS_SNAPPROCESS, 0)
	if err != nil {
		return false, fmt.Errorf("process list: %w", err)
	}
	defer windows.CloseHandle(snap)
	self := windows.GetCurrentProcessId()
	names := map[uint32]string{}
	parent, found := uint32(0), false
	e := windows.ProcessEntry32{Size: uint32(unsafe.Sizeof(windows.ProcessEntry32{}))}
	for err = windows.Process32First(snap, &e); err == nil; err = windows.Process32Next(snap, &e) {
		names[e.ProcessID] = windows.UTF16ToString(e.ExeFile[:])
		if e.ProcessID == self {
			parent, found = e.ParentProcessID, true
		}
	}
	if !errors.Is(err, windows.ERROR_NO_MORE_FILES) {
		return false, fmt.Errorf("process list: %w", err)
	}
	return found && strings.EqualFold(names[parent], "services.exe"), nil
}

// RunService runs body as the service name under the service control
// manager and returns when it ends. stop is closed when the manager asks
// the service to stop (or the system shuts down); body then returns its
// exit code. A non-zero code reports a service-specific failure, which
// triggers the recovery actions set by InstallService.
func RunService(name string, body func(stop <-chan struct{}) int) error {
	return svc.Run(name, &serviceHandler{body: body})
}

type serviceHandler struct {
	body func(stop <-chan struct{}) int
}

func (h *serviceHandler) Execute(_ []string, r <-chan svc.ChangeRequest, s chan<- svc.Status) (bool, uint32) {
	const accepts = svc.AcceptStop | svc.AcceptShutdown
	s <- svc.Status{State: svc.StartPending, WaitHint: uint32(serviceTimeout / time.Millisecond)}
	stop := make(chan struct{})
	done := make(chan int, 1)
	go func() { done <- h.body(stop) }()
	s <- svc.Status{State: svc.Running, Accepts: accepts}
	// While stopping, report progress so the manager does not take the
	// service for hung while requests in flight finish.
	var ticker *time.Ticker
	var tick <-chan time.Time
	var checkpoint uint32
	stopping := func() svc.Status {
		checkpoint++
		return svc.Status{State: svc.StopPending, CheckPoint: checkpoint, WaitHint: 5000}
	}
	for {
		select {
		case code := <-done:
			if ticker != nil {
				ticker.Stop()
			}
			return code != 0, uint32(code)
		case <-tick:
			s <- stopping()
		case c := <-r:
			switch c.Cmd {
			case svc.Interrogate:
				s <- c.CurrentStatus
			case svc.Stop, svc.Shutdown:
				if ticker == nil {
					s <- stopping()
					close(stop)
					ticker = time.NewTicker(2 * time.Second)
					tick = ticker.C
				}
			}
		}
	}
}

// NewEventLogHandler returns a slog handler writing each record at level
// or above to the Application event log under source: error records as
// errors, warnings as warnings, the rest as information. The event log
// stamps the time, so records carry only the message and attributes.
// Call the returned close function when done.
func NewEventLogHandler(source string, level slog.Leveler) (slog.Handler, func() error, error) {
	l, err := eventlog.Open(source)
	if err != nil {
		return nil, nil, fmt.Errorf("event log source %s: %w", source, err)
	}
	sink := &eventSink{log: l}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
			return slog.Attr{}
		}
		return a
	}}
	return &eventHandler{text: slog.NewTextHandler(sink, opts), sink: sink}, l.Close, nil
}

// eventSink collects the one Write a text handler makes per record.
type eventSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
	log *eventlog.Log
}

func (s *eventSink) Write(p []byte) (int, error) { return s.buf.Write(p) }

type eventHandler struct {
	text slog.Handler
	sink *eventSink
}

// Event IDs: EventCreate.exe's message file accepts 1 to 1000.
const (
	eventInfo    = 1
	eventWarning = 2
	eventError   = 3
	// ReportEvent refuses strings longer than 31839 characters.
	eventMaxLen = 31000
)

func (h *eventHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.text.Enabled(ctx, l)
}

func (h *eventHandler) Handle(ctx context.Context, r slog.Record) error {
	h.sink.mu.Lock()
	defer h.sink.mu.Unlock()
	h.sink.buf.Reset()
	if err := h.text.Handle(ctx, r); err != nil {
		return err
	}
	msg := string(bytes.TrimRight(h.sink.buf.Bytes(), "\n"))
	if len(msg) > eventMaxLen {
		msg = msg[:eventMaxLen] + " …"
	}
	switch {
	case r.Level >= slog.LevelError:
		return h.sink.log.Error(eventError, msg)
	case r.Level >= slog.LevelWarn:
		return h.sink.log.Warning(eventWarning, msg)
	default:
		return h.sink.log.Info(eventInfo, msg)
	}
}

func (h *eventHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &eventHandler{text: h.text.WithAttrs(as), sink: h.sink}
}

func (h *eventHandler) WithGroup(name string) slog.Handler {
	return &eventHandler{text: h.text.WithGroup(name), sink: h.sink}
}
