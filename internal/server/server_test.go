package server_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"kmsd/internal/client"
	"kmsd/internal/kms"
	"kmsd/internal/products"
	"kmsd/internal/rpc"
	"kmsd/internal/server"
)

// seeded is a deterministic random source for tests.
type seeded struct {
	mu sync.Mutex
	r  *rand.ChaCha8
}

func (s *seeded) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r.Read(p)
}

func testEnv(seed byte) kms.Env {
	var k [32]byte
	k[0] = seed
	return kms.Env{Rand: &seeded{r: rand.NewChaCha8(k)}, Now: time.Now}
}

type recorder struct {
	mu      sync.Mutex
	events  int
	refused int
}

func (r *recorder) Record(e *server.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events++
	if e.Decision.HResult != 0 {
		r.refused++
	}
}

// start runs a host on 127.0.0.1:0 and returns its address.
func start(t testing.TB, mutate func(*server.Server)) (string, *recorder) {
	t.Helper()
	table := products.Builtin()
	env := testEnv(1)
	slots := make([]kms.Slot, len(table.CSVLKs))
	for i, k := range table.CSVLKs {
		slots[i] = kms.NewSlot(k.BuiltinEPID, kms.DefaultHWID)
	}
	rec := &recorder{}
	srv := &server.Server{
		Host: &kms.Host{Table: table, Slots: slots, Env: env,
			Policy: kms.Policy{ActivationInterval: kms.DefaultActivationInterval, RenewalInterval: kms.DefaultRenewalInterval}},
		Negotiation: rpc.Negotiation{NDR64: true, BTFN: true},
		IdleTimeout: 5 * time.Second,
		Recorder:    rec,
	}
	if mutate != nil {
		mutate(srv)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return l.Addr().String(), rec
}

// TestRoundTripMatrix activates every product with every protocol version
// and every bind variant of the client, against hosts with NDR64 on and off.
func TestRoundTripMatrix(t *testing.T) {
	table := products.Builtin()
	type variant struct{ ndr64, btfn, mpx, hostNDR64 bool }
	var variants []variant
	for i := 0; i < 16; i++ {
		variants = append(variants, variant{i&1 != 0, i&2 != 0, i&4 != 0, i&8 != 0})
	}
	hosts := map[bool]string{}
	hosts[true], _ = start(t, nil)
	hosts[false], _ = start(t, func(s *server.Server) { s.Negotiation.NDR64 = false })
	step := 1
	if testing.Short() {
		step = 17
	}
	runs := 0
	for p := 0; p < len(table.Products); p += step {
		for _, major := range []uint16{4, 5, 6} {
			for _, v := range variants {
				opt := client.DefaultOptions(table, testEnv(2))
				opt.Product, opt.Requests = p, 2
				opt.Version = &kms.Version{Major: major}
				opt.NDR64, opt.BTFN, opt.Multiplex = v.ndr64, v.btfn, v.mpx
				c := &client.Client{Addr: hosts[v.hostNDR64], Opt: opt}
				results := c.Run(context.Background())
				runs++
				if len(results) != 2 {
					t.Fatalf("product %d V%d %+v: %d results", p+1, major, v, len(results))
				}
				for i, r := range results {
					if r.Err != nil || r.HResult != 0 {
						t.Fatalf("product %d V%d %+v request %d: err %v hresult 0x%08X", p+1, major, v, i+1, r.Err, r.HResult)
					}
					want := table.KMSItems[table.Products[p].KMS].NPolicy * 2
					if want == 0 {
						want = 1
					}
					if r.Response.Base.Count != want {
						t.Fatalf("product %d: count %d, want %d", p+1, r.Response.Base.Count, want)
					}
					wantSyntax := rpc.NDR32
					if i == 1 && v.ndr64 && v.hostNDR64 {
						wantSyntax = rpc.NDR64
					}
					if r.Syntax != wantSyntax {
						t.Fatalf("product %d %+v request %d travelled as %v, want %v", p+1, v, i+1, r.Syntax, wantSyntax)
					}
				}
			}
		}
	}
	t.Logf("%d client runs of 2 requests each", runs)
}

func TestRefusalsAndFaults(t *testing.T) {
	addr, rec := start(t, func(s *server.Server) { s.Host.Policy.Whitelist = 3 })
	table := products.Builtin()
	cases := []struct {
		product string
		hresult uint32
	}{
		{"64", 0},
		{"45", kms.HResultKMSIDMismatch},  // retail
		{"154", kms.HResultKMSIDMismatch}, // preview
	}
	for _, tc := range cases {
		i, _ := table.Lookup(tc.product)
		opt := client.DefaultOptions(table, testEnv(3))
		opt.Product, opt.Requests = i, 1
		r := (&client.Client{Addr: addr, Opt: opt}).Run(context.Background())[0]
		if r.Err != nil || r.HResult != tc.hresult {
			t.Errorf("product %s: err %v hresult 0x%08X, want 0x%08X", tc.product, r.Err, r.HResult, tc.hresult)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.events != 3 || rec.refused != 2 {
		t.Errorf("recorder saw %d events, %d refused; want 3, 2", rec.events, rec.refused)
	}
}

// exchange writes raw PDUs and returns the raw answer.
func exchange(t *testing.T, nc net.Conn, pdu []byte) []byte {
	t.Helper()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Write(pdu); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, 16)
	if _, err := readFull(nc, hdr); err != nil {
		t.Fatal(err)
	}
	h, err := rpc.ParseHeader(hdr)
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(h.FragLength)-16)
	if _, err := readFull(nc, body); err != nil {
		t.Fatal(err)
	}
	return append(hdr, body...)
}

func readFull(nc net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := nc.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func TestFaultOnUnknownContext(t *testing.T) {
	addr, _ := start(t, nil)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	stub := rpc.AppendRequestStub(nil, rpc.NDR32, make([]byte, 260))
	req := rpc.Request{Flags: 3, CallID: 7, AllocHint: uint32(len(stub)), ContextID: 5, Stub: stub}
	pdu, _ := req.Encode(nil)
	raw := exchange(t, nc, pdu)
	var f rpc.Fault
	if err := f.Decode(raw); err != nil {
		t.Fatal(err)
	}
	if f.Status != rpc.StatusUnknownInterface || f.CallID != 7 || len(raw) != 32 || raw[3] != 0x23 {
		t.Errorf("fault %+v, %d bytes, flags 0x%02x", f, len(raw), raw[3])
	}
	// The connection stays usable: bind and ask again on context 0.
	b := rpc.Bind{Flags: 3, CallID: 8, MaxXmitFrag: 5840, MaxRecvFrag: 5840,
		Contexts: []rpc.ContextElem{{ID: 0, Abstract: rpc.KMSInterface, Transfer: []rpc.SyntaxID{rpc.NDR32Syntax}}}}
	pdu, _ = b.Encode(nil)
	var ack rpc.BindAck
	if err := ack.Decode(exchange(t, nc, pdu)); err != nil || ack.Results[0].Result != 0 {
		t.Fatalf("bind after fault: %v %+v", err, ack.Results)
	}
}

func TestMalformedInputClosesConnection(t *testing.T) {
	addr, _ := start(t, nil)
	cases := map[string][]byte{
		"frag_length below header": {5, 0, 11, 3, 0x10, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0},
		"frag_length above cap":    {5, 0, 11, 3, 0x10, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0},
		"rpc version 4":            {4, 0, 11, 3, 0x10, 0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0},
		"unknown PDU type":         {5, 0, 1, 3, 0x10, 0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0},
		"bind with too many elems": append([]byte{5, 0, 11, 3, 0x10, 0, 0, 0, 32, 0, 0, 0, 1, 0, 0, 0}, 0xd0, 0x16, 0xd0, 0x16, 0, 0, 0, 0, 200, 0, 0, 0, 0, 0, 0, 0),
		"truncated PDU":            {5, 0, 11, 3, 0x10, 0, 0, 0, 160, 0, 0, 0, 1, 0, 0, 0, 1, 2, 3},
	}
	for name, pdu := range cases {
		t.Run(name, func(t *testing.T) {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.Write(pdu)
			if name == "truncated PDU" {
				nc.(*net.TCPConn).CloseWrite()
			}
			nc.SetReadDeadline(time.Now().Add(3 * time.Second))
			var b [64]byte
			n, err := nc.Read(b[:])
			if err == nil {
				t.Fatalf("got %d bytes, want the connection closed", n)
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("connection still open after bad input")
			}
		})
	}
}

func TestIdleTimeout(t *testing.T) {
	addr, _ := start(t, func(s *server.Server) { s.IdleTimeout = 200 * time.Millisecond })
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	begin := time.Now()
	nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	var b [1]byte
	if _, err := nc.Read(b[:]); err == nil {
		t.Fatal("read data from an idle connection")
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Fatalf("idle connection closed after %v", d)
	}
}

func TestPrivateAddresses(t *testing.T) {
	for addr, want := range map[string]bool{
		"10.1.2.3": true, "172.31.0.1": true, "172.32.0.1": false, "192.168.1.1": true,
		"169.254.9.9": true, "127.0.0.1": true, "100.64.0.1": false, "8.8.8.8": false,
		"::1": true, "fe80::1": true, "fd00::1": true, "2001:db8::1": false, "::ffff:10.0.0.1": true,
		"::ffff:8.8.8.8": false,
	} {
		if got := server.IsPrivate(mustAddr(addr)); got != want {
			t.Errorf("IsPrivate(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestDisconnectAfterAnswer(t *testing.T) {
	addr, _ := start(t, func(s *server.Server) { s.Disconnect = true })
	table := products.Builtin()
	opt := client.DefaultOptions(table, testEnv(4))
	opt.Product, opt.Requests = 63, 3
	results := (&client.Client{Addr: addr, Opt: opt}).Run(context.Background())
	for _, r := range results {
		if r.Err != nil || r.HResult != 0 {
			t.Fatalf("request %d: %v 0x%08X", r.Index, r.Err, r.HResult)
		}
	}
	if len(results) != 3 {
		t.Fatal(fmt.Sprint(len(results), " results"))
	}
}

func TestPeerPolicy(t *testing.T) {
	p := server.PeerPolicy{
		Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")},
		Deny:  []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")},
	}
	for addr, want := range map[string]bool{
		"10.1.1.1": true, "10.9.1.1": false, "192.168.1.1": false, "2001:db8::5": true,
		"::ffff:10.1.1.1": true, "::ffff:10.9.9.9": false,
	} {
		if got := p.Allowed(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Allowed(%s) = %v, want %v", addr, got, want)
		}
	}
	priv := server.PeerPolicy{PrivateOnly: true}
	if priv.Allowed(netip.MustParseAddr("100.64.1.1")) || !priv.Allowed(netip.MustParseAddr("127.0.0.1")) {
		t.Error("PrivateOnly misjudges addresses")
	}
}

func TestAccessControlAndPerAddressCap(t *testing.T) {
	addr, _ := start(t, func(s *server.Server) {
		s.AllowPeer = server.PeerPolicy{Deny: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}.Allowed
		s.MaxPerAddr = 2
	})
	_, port, _ := net.SplitHostPort(addr)
	// A denied source address (127.0.0.2 is loopback on Linux) is closed without an answer.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	if nc, err := d.Dial("tcp", "127.0.0.1:"+port); err == nil {
		nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		var b [1]byte
		if _, err := nc.Read(b[:]); err == nil {
			t.Error("denied peer got data")
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Error("denied peer's connection stayed open")
		}
		nc.Close()
	}
	// Two idle connections fill the cap; a third is closed; an activation
	// still works once one of them goes away.
	var held []net.Conn
	for i := 0; i < 2; i++ {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, nc)
	}
	time.Sleep(100 * time.Millisecond)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	var b [1]byte
	if _, err := nc.Read(b[:]); err == nil || isTimeout(err) {
		t.Errorf("third connection from one address was not closed: %v", err)
	}
	nc.Close()
	held[0].Close()
	time.Sleep(100 * time.Millisecond)
	table := products.Builtin()
	opt := client.DefaultOptions(table, testEnv(5))
	opt.Product, opt.Requests = 63, 1
	if r := (&client.Client{Addr: addr, Opt: opt}).Run(context.Background())[0]; r.Err != nil || r.HResult != 0 {
		t.Errorf("activation after a slot freed: %v", r.Err)
	}
	held[1].Close()
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestWorkersAreReused checks that the goroutine of a finished connection
// serves the next one, and that waiting workers end after WorkerIdle and
// on Shutdown.
func TestWorkersAreReused(t *testing.T) {
	var srv *server.Server
	addr, _ := start(t, func(s *server.Server) { s.WorkerIdle = 300 * time.Millisecond; srv = s })
	table := products.Builtin()
	activate := func() {
		t.Helper()
		opt := client.DefaultOptions(table, testEnv(5))
		opt.Product = 63
		results := (&client.Client{Addr: addr, Opt: opt}).Run(context.Background())
		if len(results) != 1 || results[0].Err != nil || results[0].HResult != 0 {
			t.Fatalf("activation failed: %+v", results)
		}
		waitFor(t, "connection to end", func() bool { return srv.Stats.Open.Load() == 0 })
	}
	activate()
	waitFor(t, "a waiting worker", func() bool { return srv.Stats.IdleWorkers.Load() == 1 })
	for range 20 {
		activate()
		// The connection's goroutine did not end: it waits for the next.
		waitFor(t, "the worker to wait again", func() bool { return srv.Stats.IdleWorkers.Load() >= 1 })
		if n := srv.Stats.IdleWorkers.Load(); n > 1 {
			t.Fatalf("%d waiting workers after sequential connections, want 1", n)
		}
	}
	if got := srv.Stats.Accepted.Load(); got != 21 {
		t.Fatalf("accepted %d connections, want 21", got)
	}
	// Waiting workers end after WorkerIdle.
	waitFor(t, "idle workers to end", func() bool { return srv.Stats.IdleWorkers.Load() == 0 })

	// Several at once on a host whose workers wait an hour: Shutdown ends
	// every waiting worker.
	var srv2 *server.Server
	addr2, _ := start(t, func(s *server.Server) { s.WorkerIdle = time.Hour; srv2 = s })
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			opt := client.DefaultOptions(table, testEnv(6))
			(&client.Client{Addr: addr2, Opt: opt}).Run(context.Background())
		})
	}
	wg.Wait()
	srv = srv2
	waitFor(t, "connections to end", func() bool { return srv.Stats.Open.Load() == 0 })
	if n := srv.Stats.IdleWorkers.Load(); n < 1 || n > 8 {
		t.Fatalf("%d waiting workers after 8 connections", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Shutdown to end waiting workers", func() bool { return srv.Stats.IdleWorkers.Load() == 0 })
}

// waitFor polls cond for up to 3 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(3 * time.Second); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
