package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	crand "crypto/rand"

	"kmsd/internal/kms"
	"kmsd/internal/products"
	"kmsd/internal/rpc"
	"kmsd/internal/server"
)

// startKmsd runs a real kmsd host on 127.0.0.1:0.
func startKmsd(t *testing.T, ndr64 bool) string {
	t.Helper()
	table := products.Builtin()
	slots := make([]kms.Slot, len(table.CSVLKs))
	for i, k := range table.CSVLKs {
		slots[i] = kms.NewSlot(k.BuiltinEPID, kms.DefaultHWID)
	}
	srv := &server.Server{
		Host: &kms.Host{Table: table, Slots: slots, Env: kms.Env{Rand: crand.Reader, Now: time.Now},
			Policy: kms.Policy{ActivationInterval: kms.DefaultActivationInterval, RenewalInterval: kms.DefaultRenewalInterval}},
		Negotiation: rpc.Negotiation{NDR64: ndr64, BTFN: true},
		IdleTimeout: 5 * time.Second,
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return l.Addr().String()
}

func startNull(t *testing.T) *NullHost {
	t.Helper()
	h, err := StartNullHost(DefaultProduct, DefaultMajor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func config(target, mode string, count int) Config {
	c := DefaultConfig()
	c.Target, c.Mode, c.Count, c.Concurrency, c.PerConn = target, mode, count, 8, 20
	c.Duration = time.Minute
	return c
}

func run(t *testing.T, cfg Config) Report {
	t.Helper()
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func checkClean(t *testing.T, rep Report, n int) {
	t.Helper()
	if rep.OK != n || rep.Requests != n || len(rep.Errors) != 0 {
		t.Fatalf("ok %d requests %d errors %v, want %d clean", rep.OK, rep.Requests, rep.Errors, n)
	}
	if !(0 < rep.P50 && rep.P50 <= rep.P90 && rep.P90 <= rep.P99 && rep.P99 <= rep.Max) {
		t.Fatalf("percentiles out of order: p50 %v p90 %v p99 %v max %v", rep.P50, rep.P90, rep.P99, rep.Max)
	}
	if rep.RatePerSec <= 0 || rep.Elapsed <= 0 {
		t.Fatalf("rate %v elapsed %v", rep.RatePerSec, rep.Elapsed)
	}
	if rep.Stopped != StoppedCount {
		t.Fatalf("stopped by %s", rep.Stopped)
	}
}

func TestAgainstKmsd(t *testing.T) {
	for _, ndr64 := range []bool{true, false} {
		addr := startKmsd(t, ndr64)
		for _, mode := range []string{ModeNew, ModeKeepAlive} {
			for _, major := range []uint16{4, 5, 6} {
				cfg := config(addr, mode, 300)
				cfg.Major = major
				if major != 6 && (mode == ModeNew || !ndr64) {
					cfg.Count = 40 // the full 300 run covers V6; other versions are spot checks
				}
				rep := run(t, cfg)
				checkClean(t, rep, cfg.Count)
				t.Logf("ndr64 %v %s V%d: %.0f/s p50 %v p99 %v", ndr64, mode, major, rep.RatePerSec, rep.P50, rep.P99)
			}
		}
	}
}

func TestAgainstNullHost(t *testing.T) {
	h := startNull(t)
	for _, mode := range []string{ModeNew, ModeKeepAlive} {
		cfg := config(h.Addr(), mode, 300)
		cfg.FixedRequest = h.Request()
		rep := run(t, cfg)
		checkClean(t, rep, 300)
		if !rep.Fixed {
			t.Fatal("report does not say the request was fixed")
		}
		t.Logf("null %s: %.0f/s p50 %v p99 %v", mode, rep.RatePerSec, rep.P50, rep.P99)
	}
}

func TestNullHostOtherVersions(t *testing.T) {
	for _, major := range []uint16{4, 5} {
		h, err := StartNullHost(0, major)
		if err != nil {
			t.Fatal(err)
		}
		cfg := config(h.Addr(), ModeKeepAlive, 50)
		cfg.Product, cfg.Major, cfg.FixedRequest = 0, major, h.Request()
		checkClean(t, run(t, cfg), 50)
		h.Close()
	}
}

// Fresh random requests cannot verify against the null host's one answer:
// the verification is real.
func TestNullHostAnswerFailsForOtherRequests(t *testing.T) {
	h := startNull(t)
	rep := run(t, config(h.Addr(), ModeKeepAlive, 100))
	if rep.OK != 0 || rep.Errors[KindInvalidResponse] != 100 {
		t.Fatalf("ok %d errors %v, want 100 invalid-response", rep.OK, rep.Errors)
	}
}

// corrupt rewrites the null host's answers; it must run before any traffic.
func corrupt(h *NullHost, f func(syn rpc.Syntax, pdu []byte) []byte) {
	for _, syn := range []rpc.Syntax{rpc.NDR32, rpc.NDR64} {
		h.resp[syn] = f(syn, h.resp[syn])
	}
}

func TestCorruptedAnswerIsInvalid(t *testing.T) {
	for _, at := range []string{"middle", "last"} {
		h := startNull(t)
		corrupt(h, func(syn rpc.Syntax, pdu []byte) []byte {
			var resp rpc.Response
			if err := resp.Decode(pdu); err != nil {
				t.Fatal(err)
			}
			st, err := rpc.DecodeResponseStub(resp.Stub, syn)
			if err != nil {
				t.Fatal(err)
			}
			i := len(st.Payload) / 2
			if at == "last" {
				i = len(st.Payload) - 1
			}
			st.Payload[i] ^= 0x40 // aliases pdu
			return pdu
		})
		for _, mode := range []string{ModeNew, ModeKeepAlive} {
			cfg := config(h.Addr(), mode, 60)
			cfg.FixedRequest = h.Request()
			rep := run(t, cfg)
			if rep.OK != 0 || rep.Errors[KindInvalidResponse] != 60 || len(rep.Errors) != 1 {
				t.Fatalf("%s byte flipped, %s: ok %d errors %v, want 60 invalid-response", at, mode, rep.OK, rep.Errors)
			}
			if rep.P50 != 0 || rep.Max != 0 {
				t.Fatalf("latencies of failed activations counted: %v %v", rep.P50, rep.Max)
			}
		}
	}
}

func TestRefusalCountedByHResult(t *testing.T) {
	h := startNull(t)
	corrupt(h, func(syn rpc.Syntax, _ []byte) []byte {
		stub := rpc.AppendRefusalStub(nil, syn, kms.HResultKMSIDMismatch)
		r := rpc.Response{Flags: rpc.FlagFirst | rpc.FlagLast, AllocHint: uint32(len(stub)), Stub: stub}
		pdu, err := r.Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		return pdu
	})
	cfg := config(h.Addr(), ModeKeepAlive, 50)
	cfg.FixedRequest = h.Request()
	rep := run(t, cfg)
	if rep.Errors["refused-0xC004F042"] != 50 || rep.OK != 0 {
		t.Fatalf("errors %v ok %d", rep.Errors, rep.OK)
	}
}

// A response PDU with a broken stub is a protocol error, and a wrong
// call_id too.
func TestProtocolErrors(t *testing.T) {
	h := startNull(t)
	corrupt(h, func(syn rpc.Syntax, pdu []byte) []byte {
		binary.LittleEndian.PutUint32(pdu[24:], 7) // first size field of the stub
		return pdu
	})
	cfg := config(h.Addr(), ModeNew, 20)
	cfg.FixedRequest = h.Request()
	if rep := run(t, cfg); rep.Errors[KindProtocol] != 20 {
		t.Fatalf("errors %v", rep.Errors)
	}
}

func TestConnectErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	for _, mode := range []string{ModeNew, ModeKeepAlive} {
		rep := run(t, config(addr, mode, 30))
		if rep.Errors[KindConnect] != 30 || rep.OK != 0 || rep.Requests != 30 {
			t.Fatalf("%s: requests %d errors %v", mode, rep.Requests, rep.Errors)
		}
	}
}

// fakeHost accepts connections and handles each with f.
func fakeHost(t *testing.T, f func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { defer c.Close(); f(c) })
		}
	})
	return l.Addr().String()
}

func TestClosedAndTimeout(t *testing.T) {
	closer := fakeHost(t, func(c net.Conn) { c.Read(make([]byte, 16)) })
	rep := run(t, config(closer, ModeNew, 20))
	if rep.Errors[KindClosed] != 20 {
		t.Fatalf("closing host: errors %v", rep.Errors)
	}
	silent := fakeHost(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	cfg := config(silent, ModeNew, 4)
	cfg.Concurrency, cfg.Timeout = 4, 200*time.Millisecond
	rep = run(t, cfg)
	if rep.Errors[KindTimeout] != 4 {
		t.Fatalf("silent host: errors %v", rep.Errors)
	}
}

// Cancelling the context aborts activations in flight at once; they are
// not counted.
func TestCancel(t *testing.T) {
	silent := fakeHost(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	cfg := config(silent, ModeKeepAlive, 1000)
	cfg.Timeout = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("cancelled run took %v", d)
	}
	if rep.Stopped != StoppedCancelled || rep.Requests != 0 {
		t.Fatalf("stopped %s requests %d errors %v", rep.Stopped, rep.Requests, rep.Errors)
	}
}

func TestDurationBoundsRun(t *testing.T) {
	h := startNull(t)
	for _, mode := range []string{ModeNew, ModeKeepAlive} {
		cfg := config(h.Addr(), mode, MaxCount)
		cfg.Duration, cfg.FixedRequest = 300*time.Millisecond, h.Request()
		start := time.Now()
		rep := run(t, cfg)
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("%s: 300ms run took %v", mode, d)
		}
		if rep.Stopped != StoppedDuration || rep.OK == 0 || rep.OK >= MaxCount || len(rep.Errors) != 0 {
			t.Fatalf("%s: stopped %s ok %d errors %v", mode, rep.Stopped, rep.OK, rep.Errors)
		}
	}
}

func TestTargetMustBeLoopback(t *testing.T) {
	for _, target := range []string{"192.0.2.1:1688", "10.0.0.1:1688", "[2001:db8::1]:1688", "kms.example.com:1688", "0.0.0.0:1688", "[::]:1688"} {
		cfg := config(target, ModeNew, 10)
		if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "--allow-remote") {
			t.Errorf("%s: err %v, want a refusal", target, err)
		}
		if err := CheckTarget(target, true); err != nil {
			t.Errorf("%s with allow-remote: %v", target, err)
		}
	}
	for _, target := range []string{"127.0.0.1:1688", "127.1.2.3:1", "[::1]:1688", "localhost:1688", "LocalHost:1", "[::ffff:127.0.0.1]:1688"} {
		if err := CheckTarget(target, false); err != nil {
			t.Errorf("%s: %v", target, err)
		}
	}
	if err := CheckTarget("127.0.0.1", false); err == nil {
		t.Error("target without a port accepted")
	}
}

func TestConfigBounds(t *testing.T) {
	bad := []func(*Config){
		func(c *Config) { c.Count = MaxCount + 1 },
		func(c *Config) { c.Count = -1 },
		func(c *Config) { c.Duration = MaxDuration + time.Second },
		func(c *Config) { c.Duration = -time.Second },
		func(c *Config) { c.Concurrency = MaxConcurrency + 1 },
		func(c *Config) { c.Mode = "burst" },
		func(c *Config) { c.Major = 7 },
		func(c *Config) { c.Product = 100000 },
		func(c *Config) { c.Timeout = 11 * time.Minute },
	}
	for i, f := range bad {
		cfg := DefaultConfig()
		f(&cfg)
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("case %d: accepted %+v", i, cfg)
		}
	}
	var c Config
	if err := c.normalize(products.Builtin()); err != nil {
		t.Fatal(err)
	}
	if c.Count != DefaultCount || c.Duration != DefaultDuration || c.Major != 6 || c.Mode != ModeNew || c.Target != DefaultTarget {
		t.Fatalf("defaults: %+v", c)
	}
	d := DefaultConfig()
	if products.Builtin().Products[d.Product].Number != 64 {
		t.Fatal("default product is not number 64")
	}
}

func TestPercentile(t *testing.T) {
	var v []time.Duration
	for i := 1; i <= 100; i++ {
		v = append(v, time.Duration(i))
	}
	for q, want := range map[float64]time.Duration{0.5: 50, 0.9: 90, 0.99: 99, 1: 100} {
		if got := percentile(v, q); got != want {
			t.Errorf("p%v = %v, want %v", q, got, want)
		}
	}
	if percentile(nil, 0.5) != 0 || percentile(v[:1], 0.99) != 1 {
		t.Error("edge cases")
	}
}

func TestProgressAndJSON(t *testing.T) {
	h := startNull(t)
	var progress bytes.Buffer
	cfg := config(h.Addr(), ModeKeepAlive, 200)
	cfg.FixedRequest, cfg.Progress = h.Request(), &progress
	rep := run(t, cfg)
	if !strings.HasPrefix(progress.String(), "\r") || !strings.Contains(progress.String(), "200/200 done") {
		t.Fatalf("progress %q", progress.String())
	}
	rep.Ceiling = &Report{RatePerSec: rep.RatePerSec * 2, Errors: map[string]int{}}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.ContainsRune(b, '\n') {
		t.Fatal("JSON spans lines")
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"mode", "concurrency", "requests", "ok", "errors", "elapsed_s", "rate_per_s", "p50_ms", "p90_ms", "p99_ms", "max_ms", "ceiling"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b)
		}
	}
	if r := m["rate_vs_ceiling"].(float64); r < 0.49 || r > 0.51 {
		t.Errorf("ratio %v", r)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	if !strings.Contains(text.String(), "200 verified, 0 failed") {
		t.Errorf("text:\n%s", text.String())
	}
}

// Every activation carries a fresh client machine ID and IV, built without
// allocating, and a host decodes it as the product's request.
func TestFreshRequests(t *testing.T) {
	cfg := DefaultConfig()
	table := products.Builtin()
	if err := cfg.normalize(table); err != nil {
		t.Fatal(err)
	}
	w := newWorker(&runner{cfg: cfg, table: table, ctx: context.Background()}, 1)
	seen := map[[16]byte]bool{}
	for range 100 {
		w.nextRequest()
		var req kms.Request
		if err := req.Decode(w.sent); err != nil {
			t.Fatal(err)
		}
		if req.Base.ActID != table.Products[DefaultProduct].SKU || req.Outer.Major != 6 || req.Base.CMID[7]>>4 != 4 {
			t.Fatalf("request %+v", req.Base)
		}
		if seen[req.Base.CMID] || seen[req.IV] {
			t.Fatal("client machine ID or IV repeated")
		}
		seen[req.Base.CMID], seen[req.IV] = true, true
	}
	if n := testing.AllocsPerRun(100, w.nextRequest); n != 0 {
		t.Errorf("building a request allocates %v times", n)
	}
}

// BenchmarkKeepAliveNullHost measures one verified keep-alive activation
// against the null host (client and null host share the process, so the
// allocations are the client's verification plus the host's replay).
func BenchmarkKeepAliveNullHost(b *testing.B) {
	h, err := StartNullHost(DefaultProduct, DefaultMajor)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	cfg := DefaultConfig()
	cfg.Target, cfg.Mode, cfg.Concurrency, cfg.PerConn, cfg.Count = h.Addr(), ModeKeepAlive, 1, 1000, b.N
	cfg.FixedRequest = h.Request()
	b.ReportAllocs()
	b.ResetTimer()
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	if rep.OK != b.N {
		b.Fatalf("ok %d of %d: %v", rep.OK, b.N, rep.Errors)
	}
}
