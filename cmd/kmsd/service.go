package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"kmsd/internal/config"
	"kmsd/internal/platform"
)

// serviceBody runs the host as a Windows service: args are the serve
// options given at install time, stop is closed when the service control
// manager stops the service (or the system shuts down), logger writes to
// the Application event log. It returns the exit code; a non-zero code is
// a service failure, which the manager answers with a restart. serve.go
// sets it; nil means this build cannot run as a service.
var serviceBody func(args []string, stop <-chan struct{}, logger *slog.Logger) int

const defaultServiceName = "kmsd"

// defaultServiceAccount is the built-in account with the fewest rights;
// it may create %ProgramData%\kmsd for the activation records.
const defaultServiceAccount = `NT AUTHORITY\LocalService`

const serviceUsage = `Usage:
  kmsd service install [service options] [serve options]
  kmsd service uninstall [--name NAME]
  kmsd service start [--name NAME]
  kmsd service stop [--name NAME]
  kmsd service run [--name NAME] [serve options]

Service options (before the serve options):
  --name NAME          service name and event log source (default kmsd)
  --account ACCOUNT    account the service runs as (default NT AUTHORITY\LocalService;
                       LocalSystem, NT AUTHORITY\NetworkService or DOMAIN\user)
  --password PASSWORD  password of ACCOUNT (none for the built-in accounts)
  --manual             start on demand instead of at boot

install registers this executable, as it is now (copy it to its final place
first), with the serve options (kmsd serve --help), which are checked now.
Give files as absolute paths: a service starts in C:\Windows\System32. The
service starts at boot, is restarted after failures and logs to the
Application event log under the source NAME. uninstall stops and removes it.
run is what the service control manager starts; from a console it runs the
host in the foreground until Ctrl+C. Windows only; install, uninstall, start
and stop need an elevated prompt.
`

// serviceOptions are the options of kmsd service before the serve options.
type serviceOptions struct {
	name, account, password string
	manual                  bool
	accountSet              bool
}

// parseServiceOptions reads the service options at the start of args and
// returns the rest (the serve options). allowed lists the options the
// subcommand accepts besides --name.
func parseServiceOptions(args []string, allowed ...string) (serviceOptions, []string, error) {
	o := serviceOptions{name: defaultServiceName, account: defaultServiceAccount}
	for len(args) > 0 {
		a := args[0]
		if a == "--" {
			return o, args[1:], nil
		}
		key, val, hasVal := strings.Cut(a, "=")
		known := key == "--name"
		for _, k := range allowed {
			known = known || key == k
		}
		if !known {
			break
		}
		args = args[1:]
		if key == "--manual" {
			if hasVal {
				return o, nil, fmt.Errorf("--manual takes no value")
			}
			o.manual = true
			continue
		}
		if !hasVal {
			if len(args) == 0 {
				return o, nil, fmt.Errorf("%s needs a value", key)
			}
			val, args = args[0], args[1:]
		}
		switch key {
		case "--name":
			if val == "" || strings.ContainsAny(val, `/\`) {
				return o, nil, fmt.Errorf("--name %q: not a service name", val)
			}
			o.name = val
		case "--account":
			o.account, o.accountSet = val, true
		case "--password":
			o.password = val
		}
	}
	if o.password != "" && !o.accountSet {
		return o, nil, fmt.Errorf("--password needs --account")
	}
	return o, args, nil
}

// serviceMain is kmsd service install|uninstall|start|stop|run.
func serviceMain(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, serviceUsage)
		return 2
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "help", "-h", "--help", "-?":
		fmt.Print(serviceUsage)
		return 0
	case "install", "uninstall", "start", "stop", "run":
	default:
		fmt.Fprintf(os.Stderr, "kmsd service: unknown command %q\n\n%s", sub, serviceUsage)
		return 2
	}
	if runtime.GOOS != "windows" {
		fmt.Fprintln(os.Stderr, "kmsd service: Windows services are available only on Windows (use contrib/systemd elsewhere)")
		return 1
	}
	var allowed []string
	if sub == "install" {
		allowed = []string{"--account", "--password", "--manual"}
	}
	opts, serveArgs, err := parseServiceOptions(rest, allowed...)
	if err == nil && sub != "install" && sub != "run" && len(serveArgs) > 0 {
		err = fmt.Errorf("unexpected argument %q", serveArgs[0])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kmsd service %s: %v\n\n%s", sub, err, serviceUsage)
		return 2
	}
	switch sub {
	case "install":
		return serviceInstall(opts, serveArgs)
	case "run":
		return serviceRun(opts.name, serveArgs)
	}
	action := map[string]func(string) error{
		"uninstall": platform.UninstallService,
		"start":     platform.StartService,
		"stop":      platform.StopService,
	}[sub]
	if err := action(opts.name); err != nil {
		fmt.Fprintf(os.Stderr, "kmsd service %s: %v\n", sub, err)
		return 1
	}
	fmt.Printf("kmsd service %s: %s done\n", sub, opts.name)
	return 0
}

func serviceInstall(opts serviceOptions, serveArgs []string) int {
	cfg, err := config.ParseServer(serveArgs)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kmsd service install: %v\nRun 'kmsd serve --help' for the options.\n", err)
		return 2
	}
	if cfg.Help || cfg.Version {
		fmt.Fprintln(os.Stderr, "kmsd service install: -h and -V are not host options")
		return 2
	}
	if cfg.User != "" || cfg.Group != "" {
		fmt.Fprintln(os.Stderr, "kmsd service install: -u and -g do not exist on Windows; use --account")
		return 2
	}
	account := opts.account
	if strings.EqualFold(account, "LocalSystem") {
		account = "" // the manager's name for it is the empty account
	}
	svcArgs := append([]string{"service", "run", "--name", opts.name}, serveArgs...)
	warnings, err := platform.InstallService(platform.ServiceConfig{
		Name:        opts.name,
		DisplayName: "kmsd KMS host (" + opts.name + ")",
		Description: "Key Management Service host emulator answering KMS activation requests on TCP port 1688.",
		Account:     account,
		Password:    opts.password,
		Manual:      opts.manual,
		Args:        svcArgs,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "kmsd service install: %v\n", err)
		return 1
	}
	for _, w := range warnings {
		fmt.Fprintf(os.Stderr, "kmsd service install: warning: %s\n", w)
	}
	fmt.Printf("kmsd service install: %s installed; start it with 'kmsd service start", opts.name)
	if opts.name != defaultServiceName {
		fmt.Printf(" --name %s", opts.name)
	}
	fmt.Println("'")
	return 0
}

// serviceRun runs the host under the service control manager, or in the
// foreground when started from a console.
func serviceRun(name string, args []string) int {
	if serviceBody == nil {
		fmt.Fprintln(os.Stderr, "kmsd service run: this build cannot run as a service")
		return 1
	}
	level := slog.LevelInfo
	if cfg, err := config.ParseServer(args); err == nil && cfg.Verbose {
		level = slog.LevelDebug
	}
	isService, err := platform.IsWindowsService()
	if err != nil {
		fmt.Fprintf(os.Stderr, "kmsd service run: %v\n", err)
		return 1
	}
	if !isService {
		logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
		stop := make(chan struct{})
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(sig)
		go func() {
			<-sig
			close(stop)
		}()
		return serviceBody(args, stop, logger)
	}
	h, closeLog, err := platform.NewEventLogHandler(name, level)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kmsd service run: %v\n", err)
		return 1
	}
	defer closeLog()
	logger := slog.New(h)
	code := 0
	err = platform.RunService(name, func(stop <-chan struct{}) int {
		code = serviceBody(args, stop, logger)
		return code
	})
	if err != nil {
		logger.Error("service control manager", "service", name, "err", err)
		return 1
	}
	return code
}
