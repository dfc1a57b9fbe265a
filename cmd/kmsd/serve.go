package main

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"kmsd/internal/config"
	"kmsd/internal/kms"
	"kmsd/internal/logfmt"
	"kmsd/internal/platform"
	"kmsd/internal/products"
	"kmsd/internal/rpc"
	"kmsd/internal/server"
	"kmsd/internal/wire"
)

// serveHooks are what differs when the host runs as a Windows service.
type serveHooks struct {
	logger *slog.Logger    // the log unless -l or -e is given (nil: newLogSetup's)
	stop   <-chan struct{} // closed to shut down, as SIGTERM does
}

func init() {
	serviceBody = func(args []string, stop <-chan struct{}, logger *slog.Logger) int {
		return serve(args, false, serveHooks{logger: logger, stop: stop})
	}
}

func serveMain(args []string, asVlmcsd bool) int {
	if !asVlmcsd {
		var err error
		if args, err = containerServeArgs(args, os.Getenv); err != nil {
			fmt.Fprintf(os.Stderr, "kmsd: %v\n", err)
			return 1
		}
	}
	return serve(args, asVlmcsd, serveHooks{})
}

func serve(args []string, asVlmcsd bool, hooks serveHooks) int {
	cfg, table, tableNDR64, err := loadServerConfig(args, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kmsd: %v\n", err)
		var ue *config.UsageError
		if errors.As(err, &ue) {
			fmt.Fprintln(os.Stderr, "Run 'kmsd serve --help' for the options.")
		}
		if asVlmcsd {
			return 22
		}
		return 1
	}
	if cfg.Help {
		if asVlmcsd {
			fmt.Printf("KMS host emulator (kmsd %s, running as vlmcsd)\n\nUsage:\n\t%s [Options]\n\nAvailable options:\n%s", version, os.Args[0], config.ShortUsage(config.ServerOptions))
			return 0
		}
		fmt.Printf("Usage: kmsd serve [options]   (also: vlmcsd [options])\n\nOptions:\n%s", config.Usage(config.ServerOptions))
		return 0
	}
	if cfg.Version {
		fmt.Println("kmsd", version)
		return 0
	}
	// Run as vlmcsd without -D, detach like vlmcsd does; the parent exits
	// once the detached host reports that it is listening.
	ready := func(error) {}
	if asVlmcsd && !cfg.Foreground {
		detached, childReady, err := platform.Daemonize()
		if detached || err != nil {
			if err != nil {
				fmt.Fprintf(os.Stderr, "kmsd: %v\n", err)
				return 1
			}
			return 0
		}
		ready = childReady
	}
	fail := func(err error) int {
		ready(err)
		return 1
	}
	var logs *logSetup
	if hooks.logger != nil && cfg.LogFile == "" && !cfg.LogStdout {
		logs = &logSetup{Logger: hooks.logger}
	} else {
		logs, err = newLogSetup(&cfg)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kmsd: %v\n", err)
		return fail(err)
	}
	defer logs.Close()
	logger := logs.Logger
	if cfg.CPUProfile != "" {
		stop, err := startCPUProfile(cfg.CPUProfile)
		if err != nil {
			logger.Error("cpu profile", "err", err)
			return fail(err)
		}
		defer func() {
			stop()
			logger.Info("cpu profile written", "file", cfg.CPUProfile)
		}()
	}
	env := kms.Env{Rand: crand.Reader, Now: time.Now}
	host, ndr64, err := buildHost(&cfg, table, tableNDR64, env, logger)
	if err != nil {
		logger.Error("configuration", "err", err)
		return fail(err)
	}
	srv := &server.Server{
		Host:        host,
		Negotiation: rpc.Negotiation{NDR64: ndr64, BTFN: cfg.BTFN},
		IdleTimeout: cfg.Timeout,
		MaxConns:    cfg.MaxWorkers,
		MaxPerAddr:  cfg.MaxPerAddress,
		Disconnect:  cfg.Disconnect,
		Logger:      logger,
		Names:       productName(table),
		Privacy:     cfg.Privacy,
	}
	if pp := (server.PeerPolicy{Allow: cfg.Allow, Deny: cfg.Deny, PrivateOnly: cfg.PublicIPLevel&2 != 0}); pp.Active() {
		srv.AllowPeer = pp.Allowed
	}
	rec, err := startRecords(&cfg, asVlmcsd, table, srv, logger)
	if err != nil {
		logger.Error("activation records", "err", err)
		return fail(err)
	}
	defer rec.close()
	seedClients(host, rec.store, table, logger)
	if isPostgres(cfg.DB) {
		rec.syncCounts(srv, cfg.CountSync)
	}
	listeners, err := listen(&cfg, logger)
	if err != nil {
		logger.Error("cannot listen", "err", err)
		return fail(fmt.Errorf("cannot listen: %w", err))
	}
	if err := rec.startWeb(&cfg, table, srv, listeners, logger); err != nil {
		logger.Error("dashboard", "err", err)
		closeAll(listeners)
		return fail(err)
	}
	if err := platform.DropPrivileges(cfg.User, cfg.Group); err != nil {
		logger.Error("cannot drop privileges", "user", cfg.User, "group", cfg.Group, "err", err)
		closeAll(listeners)
		return fail(fmt.Errorf("cannot drop privileges: %w", err))
	}
	if cfg.PidFile != "" {
		if err := platform.WritePidFile(cfg.PidFile); err != nil {
			logger.Error("cannot write pid file", "file", cfg.PidFile, "err", err)
			closeAll(listeners)
			return fail(fmt.Errorf("cannot write pid file: %w", err))
		}
		defer platform.RemovePidFile(cfg.PidFile)
	}
	if p := cfg.Publish; len(p.Domains) > 0 || p.Server != "" || p.TSIG != "" || p.TSIGFile != "" {
		port := uint16(listeners[0].Addr().(*net.TCPAddr).Port)
		stopPub, err := startPublisher(publishOptions{Domains: p.Domains, Server: p.Server, Target: p.Name, TTL: p.TTL,
			Priority: p.Priority, Weight: p.Weight, TSIG: p.TSIG, TSIGFile: p.TSIGFile}, port, logger)
		if err != nil {
			logger.Error("DNS publishing", "err", err)
			closeAll(listeners)
			return fail(fmt.Errorf("DNS publishing: %w", err))
		}
		defer stopPub()
	}
	ready(nil)
	reload := func() {
		next, nextTable, nextTableNDR64, err := loadServerConfig(args, logWarnings{logger})
		if err != nil {
			logger.Error("reload failed; keeping the running configuration", "err", err)
			return
		}
		h, nextNDR64, err := buildHost(&next, nextTable, nextTableNDR64, env, logger)
		if err != nil {
			logger.Error("reload failed; keeping the running configuration", "err", err)
			return
		}
		seedClients(h, rec.store, nextTable, logger)
		srv.SetHost(h)
		logs.SetVerbose(next.Verbose)
		if nextNDR64 != ndr64 || next.BTFN != cfg.BTFN || strings.Join(next.Listen, " ") != strings.Join(cfg.Listen, " ") {
			logger.Warn("listener and RPC negotiation changes take effect after a restart")
		}
		logger.Info("configuration reloaded")
	}
	return serveUntilSignal(srv, listeners, logs, reload, hooks.stop)
}

// loadServerConfig builds the configuration from the command line and the
// ini file, and loads the product table it names; ini warnings go to w.
// CSVLK names in the ini file are those of the table that is loaded.
func loadServerConfig(args []string, w io.Writer) (config.Server, *products.Table, bool, error) {
	table := products.Builtin()
	cfg, warns, err := config.LoadServer(args, nil, csvlkIniNames(table))
	if err != nil {
		return cfg, nil, false, err
	}
	ndr64 := true
	if cfg.KMDFile != "" && cfg.KMDFile != "-" {
		table, ndr64, err = loadTable(cfg.KMDFile)
		if err != nil {
			return cfg, nil, false, err
		}
		if cfg, warns, err = config.LoadServer(args, nil, csvlkIniNames(table)); err != nil {
			return cfg, nil, false, err
		}
	}
	for _, wr := range warns {
		fmt.Fprintf(w, "Warning: %v\n", wr)
	}
	return cfg, table, ndr64, nil
}

// logWarnings writes ini warnings seen on reload to the log.
type logWarnings struct{ l *slog.Logger }

func (lw logWarnings) Write(p []byte) (int, error) {
	lw.l.Warn(strings.TrimSpace(string(p)))
	return len(p), nil
}

func productName(fallback *products.Table) func(d *kms.Decision) string {
	return func(d *kms.Decision) string {
		t := fallback
		if d.Table != nil {
			t = d.Table // the table the decision indexes
		}
		if i := t.ProductBySKU(d.Request.Base.ActID); i >= 0 {
			return t.Products[i].Name
		}
		if d.KMSItem >= 0 {
			return t.KMSItems[d.KMSItem].Name
		}
		return "unknown product " + d.Request.Base.ActID.String()
	}
}

// buildHost turns the configuration into a kms.Host and decides NDR64
// (kms-rpc.md §12).
func buildHost(cfg *config.Server, t *products.Table, tableNDR64 bool, env kms.Env, logger *slog.Logger) (*kms.Host, bool, error) {
	h := &kms.Host{
		Table: t,
		Policy: kms.Policy{Whitelist: cfg.Whitelist, CheckClientTime: cfg.CheckTime,
			ActivationInterval: cfg.ActivationInterval, RenewalInterval: cfg.RenewalInterval,
			ClientCount: cfg.ClientCount},
		Env: env,
	}
	ndr64 := tableNDR64
	if cfg.NDR64 != nil {
		ndr64 = *cfg.NDR64
	}
	gen := &kms.EPIDGen{Table: t, LCID: cfg.LCID, Build: cfg.HostBuild}
	if cfg.NDR64 != nil {
		for _, b := range t.HostBuilds {
			if b.UsesNDR64 == ndr64 {
				gen.Builds = append(gen.Builds, b)
			}
		}
		if len(gen.Builds) == 0 && cfg.HostBuild == 0 {
			logger.Warn("no host build matches the NDR64 setting; random ePIDs use any build")
		}
	} else if cfg.HostBuild != 0 && cfg.Randomization != 0 {
		ndr64 = cfg.HostBuild > 7601
	}
	build := gen.PickBuild(env.Rand)
	if cfg.NDR64 == nil && cfg.HostBuild == 0 && cfg.Randomization == 1 {
		for _, b := range t.HostBuilds {
			if b.Build == build {
				ndr64 = b.UsesNDR64
			}
		}
	}
	lcid := gen.PickLCID(env.Rand)
	overrides := map[int]config.EPIDOverride{}
	for _, o := range cfg.EPIDs {
		if o.CSVLK == config.AllCSVLKs {
			for i := range t.CSVLKs {
				if _, named := overrides[i]; !named {
					overrides[i] = o
				}
			}
			continue
		}
		i := t.CSVLKByName(o.CSVLK)
		if i < 0 {
			return nil, false, fmt.Errorf("-a %s: no CSVLK of that name (known: %s)", o.CSVLK, csvlkNames(t))
		}
		overrides[i] = o
	}
	h.Slots = make([]kms.Slot, len(t.CSVLKs))
	for i, k := range t.CSVLKs {
		hwid := kms.DefaultHWID
		if cfg.HWID != nil {
			hwid = *cfg.HWID
		}
		var epid, how string
		if o, ok := overrides[i]; ok {
			epid, how = o.EPID, "configured"
			if o.HasHWID {
				hwid = o.HWID
			}
		} else {
			switch cfg.Randomization {
			case 0:
				epid, how = k.BuiltinEPID, "built-in"
			case 1:
				epid, how = gen.Generate(i, build, lcid, env.Now().Unix(), env.Rand), "random"
			default:
				epid, how = "(new for every request)", "random per request"
			}
		}
		h.Slots[i] = kms.NewSlot(epid, hwid)
		logger.Info("using CSVLK", "csvlk", k.IniName, "name", k.DisplayName, "epid", epid, "source", how,
			"hwid", fmt.Sprintf("%X", hwid[:]))
	}
	if cfg.Randomization == 2 {
		var mu sync.Mutex
		fresh := *gen
		h.FreshEPID = func(csvlk int) string {
			if _, ok := overrides[csvlk]; ok {
				return h.Slots[csvlk].EPID
			}
			mu.Lock()
			defer mu.Unlock()
			return fresh.Generate(csvlk, fresh.PickBuild(env.Rand), fresh.PickLCID(env.Rand), env.Now().Unix(), env.Rand)
		}
	}
	if cfg.Maintain {
		sizes := make([]int, len(t.Apps))
		for i, a := range t.Apps {
			sizes[i] = a.ClientSlots
		}
		h.Clients = kms.NewClientList(sizes, cfg.StartEmpty, func() wire.GUID {
			var g wire.GUID
			io.ReadFull(env.Rand, g[:])
			return g
		})
		// As on a genuine host, a client that has not renewed for 30 days
		// no longer counts (vlmcsd never forgets).
		h.Clients.Expiry = 30 * 24 * time.Hour
	}
	return h, ndr64, nil
}

func csvlkNames(t *products.Table) string {
	var n []string
	for _, k := range t.CSVLKs {
		n = append(n, k.IniName)
	}
	return strings.Join(n, ", ")
}

// listen opens every listener: those handed over by systemd socket
// activation when present, else the configured addresses. With the
// default addresses, a host without IPv6 still starts on IPv4 with one
// warning. Public-address protection level 1 listens on the private
// addresses of the machine's interfaces instead of wildcards.
func listen(cfg *config.Server, logger *slog.Logger) ([]net.Listener, error) {
	// No TCP keep-alive probes on accepted connections: the idle timeout
	// (-t) already ends silent ones, and enabling the probes costs four
	// system calls per connection.
	lc := net.ListenConfig{KeepAlive: -1}
	if cfg.FreeBind {
		lc.Control = platform.FreeBindControl
	}
	return listenWith(cfg, logger, func(network, addr string) (net.Listener, error) {
		return lc.Listen(context.Background(), network, addr)
	})
}

// listenWith is listen with the socket call passed in (tests simulate a
// machine without IPv6 through it).
func listenWith(cfg *config.Server, logger *slog.Logger, listenFn func(network, addr string) (net.Listener, error)) ([]net.Listener, error) {
	if ls, err := platform.SystemdListeners(); err != nil || len(ls) > 0 {
		for _, l := range ls {
			logger.Info("listening (socket activation)", "addr", l.Addr().String())
		}
		return ls, err
	}
	addrs, defaults := cfg.ListenAddrs()
	if cfg.PublicIPLevel&1 != 0 {
		addrs, defaults = privateAddrs(cfg, addrs, defaults, logger), false
	}
	var ls []net.Listener
	for _, a := range addrs {
		// An address literal gets its own family only, as in vlmcsd (Go's
		// "tcp" would make 0.0.0.0 accept IPv6 too); names may be either.
		network := "tcp"
		if host, _, err := net.SplitHostPort(a); err == nil {
			if ip, err := netip.ParseAddr(host); err == nil {
				network = "tcp6"
				if ip.Is4() {
					network = "tcp4"
				}
			}
		}
		l, err := listenFn(network, a)
		if err != nil {
			if defaults && network == "tcp6" && len(ls) > 0 {
				logger.Warn("IPv6 unavailable; listening on IPv4 only", "err", err)
				continue
			}
			if cfg.ExitLevel == 0 && len(addrs) > 1 {
				logger.Warn("cannot listen", "addr", a, "err", err)
				continue
			}
			closeAll(ls)
			return nil, err
		}
		logger.Info("listening", "addr", l.Addr().String())
		ls = append(ls, l)
	}
	if len(ls) == 0 {
		return nil, errors.New("no listener could be opened")
	}
	return ls, nil
}

// privateAddrs replaces wildcard listeners by every private address of
// the machine's interfaces (vlmcsd -o 1); explicit -L addresses stay.
func privateAddrs(cfg *config.Server, addrs []string, defaults bool, logger *slog.Logger) []string {
	var out []string
	if !defaults {
		for _, a := range addrs {
			if h, _, _ := net.SplitHostPort(a); h != "0.0.0.0" && h != "::" && h != "" {
				out = append(out, a)
			}
		}
	}
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		logger.Warn("cannot list interface addresses", "err", err)
	}
	for _, ia := range ifaddrs {
		pfx, err := netip.ParsePrefix(ia.String())
		if err != nil || !server.IsPrivate(pfx.Addr()) {
			continue
		}
		host := pfx.Addr().String()
		if pfx.Addr().Is6() && pfx.Addr().IsLinkLocalUnicast() {
			continue // would need a zone; vlmcsd skips them too
		}
		out = append(out, net.JoinHostPort(host, cfg.Port))
	}
	return out
}

func closeAll(ls []net.Listener) {
	for _, l := range ls {
		l.Close()
	}
}

func serveUntilSignal(srv *server.Server, ls []net.Listener, logs *logSetup, reload func(), stop <-chan struct{}) int {
	logger := logs.Logger
	errc := make(chan error, len(ls))
	for _, l := range ls {
		go func() { errc <- srv.Serve(l) }()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sig)
	for {
		select {
		case s := <-sig:
			if s == syscall.SIGHUP {
				if err := logs.Reopen(); err != nil {
					logger.Error("cannot reopen the log file", "err", err)
				}
				reload()
				continue
			}
			logger.Info("shutting down", "signal", s.String())
			shutdown(srv)
			return 0
		case <-stop:
			logger.Info("shutting down", "signal", "service stop")
			shutdown(srv)
			return 0
		case err := <-errc:
			logger.Error("listener failed", "err", err)
			shutdown(srv)
			return 1
		}
	}
}

func shutdown(srv *server.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
}

// startCPUProfile starts a Go CPU profile of the whole run (for
// `go tool pprof`); stop writes it.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// logSetup owns the log destination: stderr by default, stdout with -e,
// a file with -l (reopened on SIGHUP so logrotate works). Times are UTC;
// -T0 drops them; -v sets the debug level.
//
// A line is written at once unless another was written less than
// logFlushDelay before; then it waits in a buffer, written at most
// logFlushDelay later (or when 32 KiB are waiting). A quiet host's lines
// appear as they happen and a busy host makes one write system call per
// batch of lines instead of one per activation. Close writes what is left.
type logSetup struct {
	Logger *slog.Logger
	level  slog.LevelVar
	mu     sync.Mutex
	path   string
	f      *os.File
	w      io.Writer     // the destination
	buf    *bufio.Writer // over w; nil when Logger was given
	timer  *time.Timer   // flushes buf
	last   time.Time     // of the last write to w
}

// logFlushDelay is how long a log line may wait in the buffer.
const logFlushDelay = 100 * time.Millisecond

func newLogSetup(cfg *config.Server) (*logSetup, error) {
	ls := &logSetup{w: os.Stderr}
	if cfg.LogStdout {
		ls.w = os.Stdout
	} else if cfg.LogFile != "" {
		ls.path = cfg.LogFile
		if err := ls.Reopen(); err != nil {
			return nil, err
		}
	}
	ls.buffer()
	ls.SetVerbose(cfg.Verbose)
	h := logfmt.New(ls, logfmt.Options{Level: &ls.level, JSON: cfg.LogFormat == "json", Timestamps: cfg.Timestamps})
	ls.Logger = slog.New(h)
	return ls, nil
}

// buffer puts the write buffer in front of the destination.
func (l *logSetup) buffer() {
	l.buf = bufio.NewWriterSize(l.w, 32<<10)
	l.timer = time.AfterFunc(time.Hour, l.flush)
	l.timer.Stop()
}

// SetVerbose switches between the info and debug levels.
func (l *logSetup) SetVerbose(v bool) {
	if v {
		l.level.Set(slog.LevelDebug)
	} else {
		l.level.Set(slog.LevelInfo)
	}
}

func (l *logSetup) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Buffered() == 0 {
		if now := time.Now(); now.Sub(l.last) >= logFlushDelay {
			n, err := l.buf.Write(p)
			if err == nil {
				err = l.buf.Flush()
			}
			l.last = now
			return n, err
		}
		l.timer.Reset(logFlushDelay)
	}
	return l.buf.Write(p)
}

// flush writes the buffered lines.
func (l *logSetup) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Flush()
	l.last = time.Now()
}

// Reopen reopens the log file (after logrotate moved it).
func (l *logSetup) Reopen() error {
	if l.path == "" {
		return nil
	}
	f, err := os.OpenFile(l.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	l.mu.Lock()
	old := l.f
	if l.buf != nil {
		l.buf.Flush() // the lines so far go to the old file
		l.buf.Reset(f)
	}
	l.f, l.w = f, f
	l.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// Close writes the buffered lines and closes the log file.
func (l *logSetup) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf != nil {
		l.timer.Stop()
		l.buf.Flush()
	}
	if l.f != nil {
		l.f.Close()
	}
}
