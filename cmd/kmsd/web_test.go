package main

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"kmsd/internal/kms"
	"kmsd/internal/metrics"
	"kmsd/internal/products"
	"kmsd/internal/rpc"
	"kmsd/internal/server"
	"kmsd/internal/web"
)

func TestIsLoopbackAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "127.1.2.3:80": true, "[::1]:8080": true, "localhost:8080": true, "LOCALHOST:1": true,
		"[::ffff:127.0.0.1]:80": true, ":8080": false, "0.0.0.0:8080": false, "[::]:8080": false,
		"192.168.1.5:8080": false, "example.com:80": false,
	} {
		if got, err := isLoopbackAddr(addr); err != nil || got != want {
			t.Errorf("%s: %v %v, want %v", addr, got, err, want)
		}
	}
	for _, bad := range []string{"127.0.0.1", "127.0.0.1:http", "127.0.0.1:70000"} {
		if _, err := isLoopbackAddr(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestStartWeb(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	ws := &web.Server{Table: products.Builtin()}
	if _, err := startWeb("0.0.0.0:0", "", ws, logger); err == nil || err.Error() != "--http on a non-loopback address needs --http-auth" {
		t.Fatalf("non-loopback without auth: %v", err)
	}
	if _, err := startWeb(":0", "", ws, logger); err == nil {
		t.Fatal("wildcard without auth accepted")
	}
	// Loopback needs no auth.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	shutdown, err := startWeb(addr, "", ws, logger)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", resp, err)
	}
	resp.Body.Close()
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A wildcard address with auth; the password is enforced.
	ws2 := &web.Server{Table: products.Builtin()}
	shutdown, err = startWeb("0.0.0.0:0", "pw", ws2, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	if ws2.Auth != "pw" {
		t.Errorf("auth not set: %q", ws2.Auth)
	}
}

func TestWebURL(t *testing.T) {
	for in, want := range map[string]string{"0.0.0.0:80": "http://localhost:80/", "[::]:8080": "http://localhost:8080/",
		"127.0.0.1:8080": "http://127.0.0.1:8080/", "[::1]:9": "http://[::1]:9/"} {
		a, _ := net.ResolveTCPAddr("tcp", in)
		if got := webURL(a); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}

func TestDialTarget(t *testing.T) {
	for in, want := range map[string]string{"0.0.0.0:1688": "127.0.0.1:1688", "[::]:1688": "[::1]:1688", ":1688": "127.0.0.1:1688",
		"192.0.2.1:1688": "192.0.2.1:1688", "kms.example.com:1688": "kms.example.com:1688"} {
		if got := dialTarget(in); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}

type count struct{ n int }

func (c *count) Record(e *server.Event) {
	c.n++
}

func startTestHost(t *testing.T, now func() time.Time) (string, *count) {
	table := products.Builtin()
	slots := make([]kms.Slot, len(table.CSVLKs))
	for i, k := range table.CSVLKs {
		slots[i] = kms.NewSlot(k.BuiltinEPID, kms.DefaultHWID)
	}
	rec := &count{}
	srv := &server.Server{
		Host: &kms.Host{Table: table, Slots: slots, Env: kms.Env{Rand: rand.Reader, Now: now},
			Policy: kms.Policy{CheckClientTime: true, ActivationInterval: 120, RenewalInterval: 10080}},
		Negotiation: rpc.Negotiation{NDR64: true, BTFN: true},
		Recorder:    rec,
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return l.Addr().String(), rec
}

func TestHealthCheck(t *testing.T) {
	addr, rec := startTestHost(t, time.Now)
	_, port, _ := net.SplitHostPort(addr)
	check := healthCheck("0.0.0.0:" + port)
	if err := check(context.Background()); err != nil {
		t.Fatalf("healthy host: %v", err)
	}
	if err := check(context.Background()); err != nil || rec.n != 2 {
		t.Fatalf("second check: %v, %d requests", err, rec.n)
	}
	// A host whose clock is 10 hours off refuses (0xC004F06C).
	skewed, _ := startTestHost(t, func() time.Time { return time.Now().Add(10 * time.Hour) })
	err := healthCheck(skewed)(context.Background())
	if err == nil || !strings.Contains(err.Error(), "0xC004F06C the request time stamp is invalid") {
		t.Errorf("refusing host: %v", err)
	}
	// Nothing listening.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	start := time.Now()
	if err := healthCheck(dead)(context.Background()); err == nil {
		t.Error("dead host healthy")
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("check took %v", time.Since(start))
	}
	// A listener that never answers: the 2 s timeout.
	silent, _ := net.Listen("tcp", "127.0.0.1:0")
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	start = time.Now()
	if err := healthCheck(silent.Addr().String())(context.Background()); err == nil {
		t.Error("silent host healthy")
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("silent host check took %v", d)
	}
}

func TestWatchForDashboard(t *testing.T) {
	set := metrics.New("x", products.Builtin())
	srv := &server.Server{}
	srv.Stats.Rejected.Store(3)
	watchForDashboard(set, &web.Server{Store: nil, Table: products.Builtin()}, srv)
	var b strings.Builder
	set.WritePrometheus(&b)
	if !strings.Contains(b.String(), "kmsd_connections_rejected_total 3\n") {
		t.Error(b.String())
	}
}
