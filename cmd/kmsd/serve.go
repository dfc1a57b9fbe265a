package main

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"kmsd/internal/config"
	"kmsd/internal/kms"
	"kmsd/internal/products"
	"kmsd/internal/rpc"
	"kmsd/internal/server"
	"kmsd/internal/wire"
)

func serveMain(args []string, asVlmcsd bool) int {
	cfg, err := config.ParseServer(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kmsd: %v\nRun 'kmsd serve --help' for the options.\n", err)
		if asVlmcsd {
			return 22
		}
		return 1
	}
	if cfg.Help {
		fmt.Printf("Usage: kmsd serve [options]   (also: vlmcsd [options])\n\nOptions:\n%s", config.Usage(config.ServerOptions))
		return 0
	}
	if cfg.Version {
		fmt.Println("kmsd", version)
		return 0
	}
	logger, closeLog, err := newLogger(&cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kmsd: %v\n", err)
		return 1
	}
	defer closeLog()
	env := kms.Env{Rand: crand.Reader, Now: time.Now}
	table := products.Builtin()
	host, ndr64, err := buildHost(&cfg, table, env, logger)
	if err != nil {
		logger.Error("configuration", "err", err)
		return 1
	}
	srv := &server.Server{
		Host:        host,
		Negotiation: rpc.Negotiation{NDR64: ndr64, BTFN: cfg.BTFN},
		IdleTimeout: cfg.Timeout,
		MaxConns:    cfg.MaxWorkers,
		Disconnect:  cfg.Disconnect,
		Logger:      logger,
		Names:       productName(table),
	}
	if cfg.PublicIPLevel&2 != 0 {
		srv.AllowPeer = server.IsPrivate
	}
	listeners, err := listen(&cfg, logger)
	if err != nil {
		logger.Error("cannot listen", "err", err)
		return 1
	}
	if cfg.PidFile != "" {
		if err := os.WriteFile(cfg.PidFile, fmt.Appendf(nil, "%d\n", os.Getpid()), 0o644); err != nil {
			logger.Error("cannot write pid file", "file", cfg.PidFile, "err", err)
			return 1
		}
		defer os.Remove(cfg.PidFile)
	}
	return serveUntilSignal(srv, listeners, logger)
}

func productName(t *products.Table) func(d *kms.Decision) string {
	return func(d *kms.Decision) string {
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
func buildHost(cfg *config.Server, t *products.Table, env kms.Env, logger *slog.Logger) (*kms.Host, bool, error) {
	h := &kms.Host{
		Table: t,
		Policy: kms.Policy{Whitelist: cfg.Whitelist, CheckClientTime: cfg.CheckTime,
			ActivationInterval: cfg.ActivationInterval, RenewalInterval: cfg.RenewalInterval},
		Env: env,
	}
	ndr64 := true
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
		i := t.CSVLKByName(o.CSVLK)
		if i < 0 {
			return nil, false, fmt.Errorf("-a %s: no CSVLK of that name (known: %s)", o.CSVLK, csvlkNames(t))
		}
		overrides[i] = o
	}
	h.Slots = make([]kms.Slot, len(t.CSVLKs))
	for i, k := range t.CSVLKs {
		hwid := kms.DefaultHWID
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

// listen opens every listener. With the default addresses, a host without
// IPv6 still starts on IPv4 with one warning.
func listen(cfg *config.Server, logger *slog.Logger) ([]net.Listener, error) {
	addrs, defaults := cfg.ListenAddrs()
	var ls []net.Listener
	for _, a := range addrs {
		network := "tcp"
		if defaults {
			network = "tcp4"
			if strings.HasPrefix(a, "[") {
				network = "tcp6"
			}
		}
		l, err := net.Listen(network, a)
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

func closeAll(ls []net.Listener) {
	for _, l := range ls {
		l.Close()
	}
}

func serveUntilSignal(srv *server.Server, ls []net.Listener, logger *slog.Logger) int {
	errc := make(chan error, len(ls))
	for _, l := range ls {
		go func() { errc <- srv.Serve(l) }()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case s := <-sig:
		logger.Info("shutting down", "signal", s.String())
	case err := <-errc:
		logger.Error("listener failed", "err", err)
		shutdown(srv)
		return 1
	}
	shutdown(srv)
	return 0
}

func shutdown(srv *server.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
}

// newLogger builds the slog logger: stderr by default, stdout with -e, a
// file with -l; UTC times unless -T0; debug level with -v.
func newLogger(cfg *config.Server) (*slog.Logger, func(), error) {
	var w io.Writer = os.Stderr
	closer := func() {}
	if cfg.LogFile != "" && !cfg.LogStdout {
		f, err := os.OpenFile(cfg.LogFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("log file: %w", err)
		}
		w, closer = f, func() { f.Close() }
	} else if cfg.LogStdout {
		w = os.Stdout
	}
	level := slog.LevelInfo
	if cfg.Verbose {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey && len(groups) == 0 {
			if !cfg.Timestamps {
				return slog.Attr{}
			}
			return slog.String(slog.TimeKey, a.Value.Time().UTC().Format(time.RFC3339))
		}
		return a
	}}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h), closer, nil
}
