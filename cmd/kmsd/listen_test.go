package main

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"

	"kmsd/internal/config"
)

// TestNoIPv6StillStarts: with the default addresses on a machine whose
// kernel has no IPv6, the host listens on IPv4 and warns once.
func TestNoIPv6StillStarts(t *testing.T) {
	cfg := config.DefaultServer()
	cfg.Port = "0"
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	ls, err := listenWith(&cfg, logger, func(network, addr string) (net.Listener, error) {
		if network == "tcp6" {
			return nil, &net.OpError{Op: "listen", Net: network, Err: syscall.EAFNOSUPPORT}
		}
		return net.Listen(network, strings.Replace(addr, "0.0.0.0", "127.0.0.1", 1))
	})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer closeAll(ls)
	if len(ls) != 1 || strings.Count(logs.String(), "level=WARN") != 1 || !strings.Contains(logs.String(), "IPv6 unavailable") {
		t.Fatalf("%d listeners, log:\n%s", len(ls), logs.String())
	}
	// An explicit address that cannot be opened is an error.
	cfg.Listen = []string{"127.0.0.1:0"}
	_, err = listenWith(&cfg, logger, func(string, string) (net.Listener, error) { return nil, errors.New("boom") })
	if err == nil {
		t.Fatal("failing explicit listener accepted")
	}
}
