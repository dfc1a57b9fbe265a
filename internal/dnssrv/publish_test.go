package dnssrv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"kmsd/internal/testdns"
)

func key(k testdns.Key) *TSIGKey {
	return &TSIGKey{Name: k.Name, Algorithm: k.Algorithm, Secret: k.Secret}
}

// srvs queries name's SRV records at the server directly.
func srvs(t *testing.T, server, name string) []*dns.SRV {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeSRV)
	c := &dns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(q, server)
	if err != nil {
		t.Fatalf("query %s: %v", name, err)
	}
	var out []*dns.SRV
	for _, rr := range r.Answer {
		if s, ok := rr.(*dns.SRV); ok {
			out = append(out, s)
		}
	}
	return out
}

func find(recs []*dns.SRV, target string, port uint16) *dns.SRV {
	for _, s := range recs {
		if strings.EqualFold(s.Target, dns.Fqdn(target)) && s.Port == port {
			return s
		}
	}
	return nil
}

// change adds (or, with remove, deletes) an SRV record as another host
// would, with a signed update of its own.
func change(t *testing.T, a *testdns.Auth, zone string, rr string, remove bool) {
	t.Helper()
	r, err := dns.NewRR(rr)
	if err != nil {
		t.Fatal(err)
	}
	m := new(dns.Msg)
	m.SetUpdate(dns.Fqdn(zone))
	if remove {
		m.Remove([]dns.RR{r})
	} else {
		m.Insert([]dns.RR{r})
	}
	k := dns.Fqdn(a.Key.Name)
	m.SetTsig(k, dns.HmacSHA256, 300, time.Now().Unix())
	c := &dns.Client{Timeout: 2 * time.Second, TsigSecret: map[string]string{k: a.Key.Secret}}
	resp, _, err := c.Exchange(m, a.Addr)
	if err != nil || resp.Rcode != dns.RcodeSuccess {
		t.Fatalf("update %q: %v %v", rr, err, resp)
	}
}

// logs collects log records for assertions.
type logs struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }
func (l *logs) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}
func (l *logs) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logs) WithGroup(string) slog.Handler      { return l }

// matching returns the records whose message contains msg, with their
// attributes as strings.
func (l *logs) matching(msg string) []map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]string
	for _, r := range l.recs {
		if !strings.Contains(r.Message, msg) {
			continue
		}
		m := map[string]string{"level": r.Level.String()}
		r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
		out = append(out, m)
	}
	return out
}

func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPublishReplacesOursAndKeepsOthers(t *testing.T) {
	a := testdns.StartAuthoritative(t)
	name := "_vlmcs._tcp.kms.test."
	change(t, a, "kms.test", name+" 300 IN SRV 0 100 1688 kms2.kms.test.", false)
	// A stale record of this host (older priority and weight) is replaced.
	change(t, a, "kms.test", name+" 900 IN SRV 9 9 1700 kms1.kms.test.", false)
	p := &Publisher{Server: a.Addr, Domains: []string{"kms.test"}, Target: "kms1.kms.test", Port: 1700,
		Priority: 5, Weight: 50, TTL: 900 * time.Second, TSIG: key(a.Key)}
	if err := p.PublishOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs := srvs(t, a.Addr, name)
	ours := find(recs, "kms1.kms.test", 1700)
	if ours == nil || ours.Priority != 5 || ours.Weight != 50 || ours.Hdr.Ttl != 900 {
		t.Fatalf("our record: %v (all: %v)", ours, recs)
	}
	if len(recs) != 2 || find(recs, "kms2.kms.test", 1688) == nil {
		t.Fatalf("want ours and kms2's, got %v", recs)
	}
	// Publishing again is idempotent.
	if err := p.PublishOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if recs := srvs(t, a.Addr, name); len(recs) != 2 {
		t.Fatalf("after a second publish: %v", recs)
	}
	if err := p.Withdraw(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs = srvs(t, a.Addr, name)
	if len(recs) != 1 || find(recs, "kms2.kms.test", 1688) == nil {
		t.Fatalf("after withdrawal want only kms2's record, got %v", recs)
	}
}

func TestTTLDefaultsAndRefresh(t *testing.T) {
	a := testdns.StartAuthoritative(t)
	p := &Publisher{Server: a.Addr, Domains: []string{"kms.test"}, Target: "kms1.kms.test", Port: 1688, TSIG: key(a.Key)}
	if err := p.PublishOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := find(srvs(t, a.Addr, "_vlmcs._tcp.kms.test"), "kms1.kms.test", 1688); r == nil || r.Hdr.Ttl != 3600 || r.Priority != 0 || r.Weight != 0 {
		t.Fatalf("default record: %v", r)
	}
	if p.cfg.refresh != 30*time.Minute {
		t.Errorf("default refresh %v, want TTL/2", p.cfg.refresh)
	}
}

// TestRunRefreshesAndWithdrawsOnCancel: Run publishes, puts the record
// back after someone deletes it, and removes it when its context ends
// while another host's record stays.
func TestRunRefreshesAndWithdrawsOnCancel(t *testing.T) {
	a := testdns.StartAuthoritative(t)
	name := "_vlmcs._tcp.kms.test."
	change(t, a, "kms.test", name+" 3600 IN SRV 0 100 1688 kms2.kms.test.", false)
	l := &logs{}
	p := &Publisher{Server: a.Addr, Domains: []string{"kms.test"}, Target: "kms1.kms.test", Port: 1688,
		Refresh: 150 * time.Millisecond, TSIG: key(a.Key), Logger: slog.New(l)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	present := func() bool { return find(srvs(t, a.Addr, name), "kms1.kms.test", 1688) != nil }
	waitFor(t, "the record", 3*time.Second, present)
	change(t, a, "kms.test", name+" 3600 IN SRV 0 0 1688 kms1.kms.test.", true)
	waitFor(t, "the refresh to restore the record", 3*time.Second, present)
	waitFor(t, "two refreshes", 3*time.Second, func() bool { return len(l.matching("refreshed")) >= 2 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	recs := srvs(t, a.Addr, name)
	if len(recs) != 1 || find(recs, "kms2.kms.test", 1688) == nil {
		t.Fatalf("after cancel want only kms2's record, got %v", recs)
	}
	if len(l.matching("published the KMS SRV record")) != 1 || len(l.matching("withdrew the KMS SRV record")) != 1 {
		t.Errorf("log lines: %v", l.recs)
	}
}

func TestRefusedUpdatesNameWhatFailed(t *testing.T) {
	a := testdns.StartAuthoritative(t)
	unknown := key(a.Key)
	unknown.Name = "nobody-knows-me"
	badSecret := key(a.Key)
	badSecret.Secret = key(a.WrongKey).Secret
	cases := []struct {
		name  string
		key   *TSIGKey
		now   func() time.Time
		codes []string // acceptable rcode/TSIG error pairs
		words string
	}{
		{"key not allowed", key(a.WrongKey), nil, []string{"NOTAUTH", "REFUSED", "NOTAUTH/BADKEY"}, `"kmsd-other"`},
		{"unknown key", unknown, nil, []string{"NOTAUTH/BADKEY"}, `does not accept TSIG key "nobody-knows-me"`},
		{"wrong secret", badSecret, nil, []string{"NOTAUTH/BADSIG"}, "wrong secret"},
		{"clock off", key(a.Key), func() time.Time { return time.Now().Add(-time.Hour) }, []string{"NOTAUTH/BADTIME"}, "clock"},
		{"unsigned", nil, nil, []string{"NOTAUTH", "REFUSED"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &Publisher{Server: a.Addr, Domains: []string{"kms.test"}, Target: "kms1.kms.test", Port: 1688, TSIG: tc.key, Now: tc.now}
			err := p.PublishOnce(context.Background())
			var ue *UpdateError
			if !errors.As(err, &ue) {
				t.Fatalf("want *UpdateError, got %v", err)
			}
			code := ue.Rcode
			if ue.TSIG != "" {
				code += "/" + ue.TSIG
			}
			msg := err.Error()
			okCode := false
			for _, c := range tc.codes {
				okCode = okCode || c == code
			}
			if !okCode || !strings.Contains(msg, code) || !strings.Contains(msg, a.Addr) ||
				!strings.Contains(msg, "_vlmcs._tcp.kms.test") || !strings.Contains(msg, tc.words) {
				t.Errorf("error %q (code %s, want one of %v mentioning %q)", msg, code, tc.codes, tc.words)
			}
			if tc.key != nil && strings.Contains(msg, tc.key.Secret) {
				t.Errorf("the error shows the secret: %q", msg)
			}
			t.Log(msg)
			if recs := srvs(t, a.Addr, "_vlmcs._tcp.kms.test"); len(recs) != 0 {
				t.Errorf("refused update changed the zone: %v", recs)
			}
		})
	}
}

// TestRunRetriesWithBackoff: a refused key is retried with doubling waits
// up to the cap, each failure logged with its rcode, and cancelling
// returns at once.
func TestRunRetriesWithBackoff(t *testing.T) {
	a := testdns.StartAuthoritative(t)
	l := &logs{}
	p := &Publisher{Server: a.Addr, Domains: []string{"kms.test"}, Target: "kms1.kms.test", Port: 1688,
		TSIG: key(a.WrongKey), RetryMin: 40 * time.Millisecond, RetryMax: 160 * time.Millisecond, Logger: slog.New(l)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- p.Run(ctx) }()
	time.Sleep(1200 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v; nothing was published, so nothing to withdraw", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Run did not return promptly after cancel")
	}
	elapsed := time.Since(start)
	fails := l.matching("publishing the KMS SRV record in DNS failed")
	// Waits 40, 80, 160, 160, ... ms: about 8 attempts in 1.2 s; allow for
	// slow machines and exchange time.
	if len(fails) < 4 || len(fails) > 12 {
		t.Fatalf("%d attempts in %v, want about 8", len(fails), elapsed)
	}
	want := []string{"40ms", "80ms", "160ms", "160ms"}
	for i, f := range fails {
		if i < len(want) && f["retry_in"] != want[i] {
			t.Errorf("attempt %d: retry_in %s, want %s", i+1, f["retry_in"], want[i])
		}
		if f["level"] != "ERROR" || !strings.Contains(f["err"], "kmsd-other") ||
			!(strings.Contains(f["err"], "NOTAUTH") || strings.Contains(f["err"], "REFUSED")) || f["domain"] != "kms.test" {
			t.Errorf("failure log %v", f)
		}
	}
}

func TestUnreachableServerNamesIt(t *testing.T) {
	// A UDP port nothing listens on: the kernel answers "refused".
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	p := &Publisher{Server: addr, Domains: []string{"kms.test"}, Target: "kms1.kms.test", Port: 1688,
		TSIG: &TSIGKey{Name: "k", Secret: "c2VjcmV0"}, Timeout: 500 * time.Millisecond}
	start := time.Now()
	err = p.PublishOnce(context.Background())
	var ue *UpdateError
	if !errors.As(err, &ue) || ue.Rcode != "" || !strings.Contains(err.Error(), addr) || !(strings.Contains(err.Error(), "failed: nothing answers there") || strings.Contains(err.Error(), "timed out")) {
		t.Fatalf("got %v", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
	t.Log(err)
}

// TestMultipleDomains: one record per domain, including a domain below a
// zone's apex; a domain the server does not serve fails alone.
func TestMultipleDomains(t *testing.T) {
	a := testdns.StartAuthoritative(t)
	p := &Publisher{Server: a.Addr, Domains: []string{"kms.test", ".other.test", "site1.kms.test", "KMS.test"},
		Target: "kms1.kms.test", Port: 1688, TSIG: key(a.Key)}
	if err := p.PublishOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"kms.test", "other.test", "site1.kms.test"} {
		if recs := srvs(t, a.Addr, "_vlmcs._tcp."+d); len(recs) != 1 || find(recs, "kms1.kms.test", 1688) == nil {
			t.Errorf("%s: %v", d, recs)
		}
	}
	if err := p.Withdraw(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"kms.test", "other.test", "site1.kms.test"} {
		if recs := srvs(t, a.Addr, "_vlmcs._tcp."+d); len(recs) != 0 {
			t.Errorf("%s after withdrawal: %v", d, recs)
		}
	}

	p = &Publisher{Server: a.Addr, Domains: []string{"kms.test", "elsewhere.test"}, Target: "kms1.kms.test", Port: 1688, TSIG: key(a.Key)}
	err := p.PublishOnce(context.Background())
	var ue *UpdateError
	if !errors.As(err, &ue) || ue.Domain != "elsewhere.test" || ue.Rcode != "NOTAUTH" || strings.Contains(err.Error(), "kms.test at") {
		t.Fatalf("got %v", err)
	}
	t.Log(err)
	if recs := srvs(t, a.Addr, "_vlmcs._tcp.kms.test"); len(recs) != 1 {
		t.Errorf("kms.test not published next to the failing domain: %v", recs)
	}
}

func TestPrimaryFromSOA(t *testing.T) {
	a := testdns.StartAuthoritative(t)
	p := &Publisher{Resolvers: []string{a.Addr}, Domains: []string{"site1.kms.test"}, Target: "kms1.kms.test", Port: 1688}
	if err := p.Check(); err != nil {
		t.Fatal(err)
	}
	server, zone, err := p.primary(context.Background(), "site1.kms.test.")
	if err != nil || server != "ns.kms.test:53" || zone != "kms.test." {
		t.Fatalf("primary: %q %q %v", server, zone, err)
	}
}

func TestCheck(t *testing.T) {
	base := func() *Publisher {
		return &Publisher{Server: "192.0.2.1", Domains: []string{"example.test"}, Target: "kms", Port: 1688}
	}
	p := base()
	if err := p.Check(); err != nil || p.cfg.server != "192.0.2.1:53" || p.cfg.target != "kms." || p.cfg.ttl != 3600 {
		t.Fatalf("%v %+v", err, p.cfg)
	}
	for _, s := range []struct{ in, want string }{{"::1", "[::1]:53"}, {"[::1]", "[::1]:53"}, {"[::1]:5353", "[::1]:5353"}, {"ns.example.test", "ns.example.test:53"}} {
		p := base()
		p.Server = s.in
		if err := p.Check(); err != nil || p.cfg.server != s.want {
			t.Errorf("server %q: %q %v", s.in, p.cfg.server, err)
		}
	}
	bad := []struct {
		mod  func(*Publisher)
		want string
	}{
		{func(p *Publisher) { p.Domains = nil }, "no domain"},
		{func(p *Publisher) { p.Domains = []string{"a b"} }, "not a valid DNS name"},
		{func(p *Publisher) { p.Target = "" }, "host name"},
		{func(p *Publisher) { p.Port = 0 }, "port"},
		{func(p *Publisher) { p.TTL = time.Millisecond }, "TTL"},
		{func(p *Publisher) { p.Server = "host:port" }, "HOST[:PORT]"},
		{func(p *Publisher) { p.TSIG = &TSIGKey{Name: "k", Secret: "!!"} }, "not base64"},
	}
	for i, b := range bad {
		p := base()
		b.mod(p)
		if err := p.Check(); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("case %d: %v, want %q", i, err, b.want)
		}
		if err := p.Run(context.Background()); err == nil {
			t.Errorf("case %d: Run accepted a bad configuration", i)
		}
	}
}

func TestUpdateErrorMessages(t *testing.T) {
	e := &UpdateError{Op: "update", Domain: "example.test", Name: "_vlmcs._tcp.example.test.", Server: "127.0.0.1:5353", Rcode: "NOTAUTH", Key: "kmsd."}
	if got := e.Error(); got != `DNS update of _vlmcs._tcp.example.test at 127.0.0.1:5353 refused: NOTAUTH (TSIG key "kmsd" not accepted for this zone, or the server is not authoritative for it)` {
		t.Errorf("%s", got)
	}
	e = &UpdateError{Op: "withdrawal", Domain: "example.test", Name: "_vlmcs._tcp.example.test.", Server: "[::1]:53", Err: fmt.Errorf("read: %w", context.DeadlineExceeded)}
	if got := e.Error(); !strings.HasPrefix(got, "DNS withdrawal of _vlmcs._tcp.example.test at [::1]:53 failed: no answer (timed out)") {
		t.Errorf("%s", got)
	}
	if !errors.Is(e, context.DeadlineExceeded) {
		t.Error("Unwrap")
	}
}
