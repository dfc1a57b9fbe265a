package main

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"kmsd/internal/client"
	"kmsd/internal/kms"
	"kmsd/internal/metrics"
	"kmsd/internal/products"
	"kmsd/internal/server"
	"kmsd/internal/web"
	"kmsd/internal/wire"
)

// Dashboard HTTP server limits.
const (
	webReadHeaderTimeout = 10 * time.Second
	webReadTimeout       = 30 * time.Second
	webWriteTimeout      = 60 * time.Second
	webIdleTimeout       = 2 * time.Minute
	webMaxHeaderBytes    = 64 << 10
)

// errWebNeedsAuth refuses to expose the dashboard without a password.
var errWebNeedsAuth = errors.New("--http on a non-loopback address needs --http-auth")

// startWeb serves the dashboard on addr (host:port) until the returned
// shutdown is called. A non-loopback addr (including an empty host, which
// means every address) needs auth, which becomes ws.Auth.
func startWeb(addr, auth string, ws *web.Server, logger *slog.Logger) (shutdown func(context.Context) error, err error) {
	loopback, err := isLoopbackAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("--http %s: %w", addr, err)
	}
	if !loopback && auth == "" {
		return nil, errWebNeedsAuth
	}
	if auth != "" {
		ws.Auth = auth
	}
	if ws.Logger == nil {
		ws.Logger = logger
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--http: %w", err)
	}
	srv := &http.Server{
		Handler:           ws.Handler(),
		ReadHeaderTimeout: webReadHeaderTimeout,
		ReadTimeout:       webReadTimeout,
		WriteTimeout:      webWriteTimeout,
		IdleTimeout:       webIdleTimeout,
		MaxHeaderBytes:    webMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("dashboard stopped", "err", err)
		}
	}()
	logger.Info("dashboard listening", "url", webURL(l.Addr()), "auth", auth != "")
	return srv.Shutdown, nil
}

// isLoopbackAddr reports whether host:port names only loopback addresses:
// a loopback IP or "localhost". An empty host listens everywhere.
func isLoopbackAddr(addr string) (bool, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false, err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return false, fmt.Errorf("bad port %q", port)
	}
	if strings.EqualFold(host, "localhost") {
		return true, nil
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback(), nil
}

// webURL is the dashboard's address for the log line; a wildcard address
// is shown as localhost.
func webURL(a net.Addr) string {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return "http://" + a.String() + "/"
	}
	host := ap.Addr().Unmap().String()
	if ap.Addr().IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(int(ap.Port()))) + "/"
}

// Health check: one activation of product 64 (Windows 10/11 Professional)
// under a fixed client machine ID and name, so that it adds one row to the
// inventory however often it runs.
const (
	healthProduct     = "64"
	healthTimeout     = 2 * time.Second
	healthWorkstation = "kmsd-healthcheck"
)

var healthCMID = wire.MustGUID("6b6d7364-6865-4c74-a863-6865636b0001")

// healthCheck returns a check that performs one real activation against
// the host's own listener hostAddr (a wildcard address is reached through
// loopback).
func healthCheck(hostAddr string) func(ctx context.Context) error {
	target := dialTarget(hostAddr)
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, healthTimeout)
		defer cancel()
		t := products.Builtin()
		opt := client.DefaultOptions(t, kms.Env{Rand: crand.Reader, Now: time.Now})
		i, ok := t.Lookup(healthProduct)
		if !ok {
			return fmt.Errorf("health check: no product %s", healthProduct)
		}
		cmid := healthCMID
		opt.Product, opt.Requests, opt.Timeout = i, 1, healthTimeout
		opt.CMID, opt.Workstation = &cmid, healthWorkstation
		c := &client.Client{Addr: target, Opt: opt}
		results := c.Run(ctx)
		if len(results) == 0 {
			return fmt.Errorf("activation against %s: %w", target, cmpErr(ctx.Err(), errors.New("no answer")))
		}
		r := results[len(results)-1]
		switch {
		case r.Err != nil:
			return fmt.Errorf("activation against %s: %w", target, r.Err)
		case r.HResult != 0:
			return fmt.Errorf("activation against %s refused: 0x%08X %s", target, r.HResult, web.DecodeResult(r.HResult).Message)
		}
		return nil
	}
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// dialTarget turns a listen address into one to dial: a wildcard or empty
// host becomes the loopback address of its family.
func dialTarget(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch ip, err := netip.ParseAddr(host); {
	case host == "":
		host = "127.0.0.1"
	case err == nil && ip.IsUnspecified() && ip.Is6():
		host = "::1"
	case err == nil && ip.IsUnspecified():
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// watchForDashboard connects the metrics to the KMS server's connection
// counters and to the dashboard's active-client counts.
func watchForDashboard(set *metrics.Set, ws *web.Server, srv *server.Server) {
	set.WatchServer(&srv.Stats)
	set.WatchActiveClients(ws.ActiveClientCounts)
}
