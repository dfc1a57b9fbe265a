// Package dnssrv publishes a KMS host in DNS as Microsoft's KMS hosts do:
// an _vlmcs._tcp SRV record (priority, weight, port, host name) added by
// RFC 2136 dynamic update, signed with TSIG (RFC 8945), in one or more
// domains (the home domain plus DnsDomainPublishList on Windows),
// refreshed periodically and withdrawn on a clean shutdown. Each domain's
// outcome is logged as Windows logs events 12294 (published) and 12293
// (failed, with the error).
//
// Only this host's own record (same target and port) is ever added or
// removed: other hosts' records under the same name stay.
package dnssrv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Service is the owner-name prefix KMS clients query (kms-client.md §1).
const Service = "_vlmcs._tcp."

// Defaults. Microsoft documents neither the TTL nor the refresh interval of
// the record its hosts register; these are kmsd's choices: an hour bounds
// how long resolvers keep a withdrawn host, and re-publishing at half the
// TTL restores a record that an administrator or a server that expires
// dynamic records removed well before caches notice.
const (
	DefaultTTL             = time.Hour
	DefaultRetryMin        = 10 * time.Second
	DefaultRetryMax        = 5 * time.Minute
	DefaultTimeout         = 5 * time.Second
	DefaultWithdrawTimeout = 5 * time.Second
	tsigFudge              = 300 // seconds, RFC 8945 §5.2.3's recommendation
)

// Publisher keeps one SRV record published in each of Domains.
type Publisher struct {
	// Server is the primary DNS server's host:port (port 53 when omitted).
	// Empty: the primary named in each domain's SOA record (its MNAME),
	// found through Resolvers, as Windows finds where to send updates.
	Server string
	// Resolvers answer the SOA queries when Server is empty (host:port);
	// empty means /etc/resolv.conf.
	Resolvers []string
	// Domains to publish in: _vlmcs._tcp.<domain> for each.
	Domains []string
	// Target is this host's DNS name (made fully qualified).
	Target string
	// Port is the TCP port the KMS host listens on.
	Port uint16
	// Priority and Weight of the record (RFC 2782). Windows publishes 0 and
	// 0 unless DnsDomainPublishList gives them.
	Priority, Weight uint16
	// TTL of the record; 0 means DefaultTTL. Whole seconds.
	TTL time.Duration
	// Refresh is how often the record is published again; 0 means TTL/2.
	Refresh time.Duration
	// TSIG signs the updates; nil sends them unsigned (for servers that
	// allow updates by address).
	TSIG *TSIGKey
	// Timeout of one exchange with a server; 0 means DefaultTimeout.
	Timeout time.Duration
	// RetryMin and RetryMax bound the exponential backoff after a failure;
	// 0 means DefaultRetryMin / DefaultRetryMax.
	RetryMin, RetryMax time.Duration
	// WithdrawTimeout bounds the withdrawal when Run's context ends; 0
	// means DefaultWithdrawTimeout.
	WithdrawTimeout time.Duration
	// Logger receives one line per outcome; nil discards them.
	Logger *slog.Logger
	// Now is the clock that signs TSIG; nil means time.Now.
	Now func() time.Time

	once    sync.Once
	cfg     config
	cfgErr  error
	alg     string
	secret  string
	keyName string
}

type config struct {
	server  string   // host:port, "" = each domain's primary
	domains []string // fully qualified, lower case
	target  string
	ttl     uint32
	refresh time.Duration
}

// Check validates the configuration; Run, PublishOnce and Withdraw return
// the same error.
func (p *Publisher) Check() error {
	p.once.Do(func() { p.cfgErr = p.check() })
	return p.cfgErr
}

func (p *Publisher) check() error {
	if p.Server != "" {
		var err error
		if p.cfg.server, err = hostPort(p.Server); err != nil {
			return err
		}
	}
	if len(p.Domains) == 0 {
		return errors.New("no domain to publish the KMS SRV record in")
	}
	seen := map[string]bool{}
	for _, d := range p.Domains {
		fq := dns.CanonicalName(strings.TrimPrefix(strings.TrimSpace(d), "."))
		if _, ok := dns.IsDomainName(fq); !ok || fq == "." || strings.ContainsAny(fq, " \t\"") {
			return fmt.Errorf("domain %q is not a valid DNS name", d)
		}
		if !seen[fq] {
			seen[fq] = true
			p.cfg.domains = append(p.cfg.domains, fq)
		}
	}
	p.cfg.target = dns.Fqdn(strings.TrimSpace(p.Target))
	if _, ok := dns.IsDomainName(p.cfg.target); !ok || p.cfg.target == "." || strings.ContainsAny(p.cfg.target, " \t\"") {
		return fmt.Errorf("host name %q is not a valid DNS name", p.Target)
	}
	if p.Port == 0 {
		return errors.New("the KMS host's port is 0")
	}
	ttl := p.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if ttl < time.Second || ttl > (1<<31-1)*time.Second {
		return fmt.Errorf("TTL %v out of range (1s to 68 years)", p.TTL)
	}
	p.cfg.ttl = uint32(ttl / time.Second)
	p.cfg.refresh = p.Refresh
	if p.cfg.refresh <= 0 {
		p.cfg.refresh = time.Duration(p.cfg.ttl) * time.Second / 2
	}
	if p.TSIG != nil {
		var err error
		if p.alg, p.secret, err = p.TSIG.check(); err != nil {
			return err
		}
		p.keyName = p.TSIG.fqdnName()
	}
	return nil
}

// hostPort adds port 53 to a server given without a port.
func hostPort(s string) (string, error) {
	s = strings.TrimSpace(s)
	host, port, err := net.SplitHostPort(s)
	switch {
	case err != nil && strings.Count(s, ":") > 1 && !strings.Contains(s, "]"):
		host, port = s, "53" // a bare IPv6 address
	case err != nil && !strings.Contains(s, ":"):
		host, port = s, "53"
	case err != nil && strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]"):
		host, port = s[1:len(s)-1], "53"
	case err != nil:
		return "", fmt.Errorf("DNS server %q: expected HOST[:PORT]", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
		return "", fmt.Errorf("DNS server %q: expected HOST[:PORT]", s)
	}
	return net.JoinHostPort(host, port), nil
}

func (p *Publisher) logger() *slog.Logger {
	if p.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Logger
}

func (p *Publisher) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Record is the SRV record this host publishes in domain.
func (p *Publisher) Record(domain string) *dns.SRV {
	p.Check()
	return &dns.SRV{
		Hdr:      dns.RR_Header{Name: Service + dns.CanonicalName(strings.TrimPrefix(domain, ".")), Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: p.cfg.ttl},
		Priority: p.Priority, Weight: p.Weight, Port: p.Port, Target: p.cfg.target,
	}
}

// PublishOnce publishes the record in every domain once; the error joins
// one *UpdateError per domain that failed.
func (p *Publisher) PublishOnce(ctx context.Context) error {
	if err := p.Check(); err != nil {
		return err
	}
	var errs []error
	for _, d := range p.cfg.domains {
		errs = append(errs, p.publish(ctx, d))
	}
	return errors.Join(errs...)
}

// Withdraw removes this host's record from every domain; other hosts'
// records stay.
func (p *Publisher) Withdraw(ctx context.Context) error {
	if err := p.Check(); err != nil {
		return err
	}
	var errs []error
	for _, d := range p.cfg.domains {
		errs = append(errs, p.withdraw(ctx, d))
	}
	return errors.Join(errs...)
}

// Run publishes the record in every domain, publishes it again every
// Refresh, retries failures with exponential backoff (RetryMin doubling
// up to RetryMax), and when ctx ends withdraws it from the domains where
// it was published, within WithdrawTimeout. It returns the configuration
// error at once, else the withdrawal's errors after ctx ends. Failures are
// logged, never returned early: run it in its own goroutine.
func (p *Publisher) Run(ctx context.Context) error {
	if err := p.Check(); err != nil {
		return err
	}
	log := p.logger()
	retryMin, retryMax := orDefault(p.RetryMin, DefaultRetryMin), orDefault(p.RetryMax, DefaultRetryMax)
	type state struct {
		next      time.Time
		backoff   time.Duration
		failures  int
		published bool
	}
	st := make([]state, len(p.cfg.domains))
	for ctx.Err() == nil {
		var wake time.Time
		for i, d := range p.cfg.domains {
			s := &st[i]
			if now := time.Now(); !s.next.After(now) {
				err := p.publish(ctx, d)
				if err != nil && ctx.Err() != nil {
					break // cancelled during the exchange: not a DNS failure
				}
				attrs := []any{"domain", strings.TrimSuffix(d, "."), "target", p.cfg.target, "port", p.Port}
				if err != nil {
					s.failures++
					if s.backoff == 0 {
						s.backoff = retryMin
					} else {
						s.backoff = min(2*s.backoff, retryMax)
					}
					s.next = time.Now().Add(s.backoff)
					log.Error("publishing the KMS SRV record in DNS failed", append(attrs, "err", err.Error(), "attempt", s.failures, "retry_in", s.backoff.String())...)
				} else {
					switch {
					case s.failures > 0:
						log.Info("published the KMS SRV record in DNS", append(attrs, "after_failures", s.failures)...)
					case !s.published:
						log.Info("published the KMS SRV record in DNS", attrs...)
					default:
						log.Debug("refreshed the KMS SRV record in DNS", attrs...)
					}
					s.published, s.failures, s.backoff = true, 0, 0
					s.next = time.Now().Add(p.cfg.refresh)
				}
			}
			if wake.IsZero() || s.next.Before(wake) {
				wake = s.next
			}
		}
		if ctx.Err() != nil {
			break
		}
		t := time.NewTimer(time.Until(wake))
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	// Withdraw where the record was published, in parallel, bounded.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), orDefault(p.WithdrawTimeout, DefaultWithdrawTimeout))
	defer cancel()
	errs := make([]error, len(st))
	var wg sync.WaitGroup
	for i, d := range p.cfg.domains {
		if !st[i].published {
			continue
		}
		wg.Go(func() {
			attrs := []any{"domain", strings.TrimSuffix(d, "."), "target", p.cfg.target, "port", p.Port}
			if errs[i] = p.withdraw(wctx, d); errs[i] != nil {
				log.Error("withdrawing the KMS SRV record from DNS failed", append(attrs, "err", errs[i].Error())...)
			} else {
				log.Info("withdrew the KMS SRV record from DNS", attrs...)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// publish replaces this host's record in domain: any record with the same
// target and port (an older priority, weight or TTL) is deleted and ours
// added, in one update.
func (p *Publisher) publish(ctx context.Context, domain string) error {
	want := p.Record(domain)
	server, zone, err := p.locate(ctx, domain, want.Hdr.Name)
	if err != nil {
		return &UpdateError{Op: "update", Domain: strings.TrimSuffix(domain, "."), Name: want.Hdr.Name, Server: server, Key: p.keyName, Err: err}
	}
	m := new(dns.Msg)
	m.SetUpdate(zone)
	m.Remove(p.ours(ctx, server, want))
	m.Insert([]dns.RR{want})
	return p.update(ctx, "update", domain, server, want.Hdr.Name, m)
}

func (p *Publisher) withdraw(ctx context.Context, domain string) error {
	want := p.Record(domain)
	server, zone, err := p.locate(ctx, domain, want.Hdr.Name)
	if err != nil {
		return &UpdateError{Op: "withdrawal", Domain: strings.TrimSuffix(domain, "."), Name: want.Hdr.Name, Server: server, Key: p.keyName, Err: err}
	}
	m := new(dns.Msg)
	m.SetUpdate(zone)
	m.Remove(p.ours(ctx, server, want))
	return p.update(ctx, "withdrawal", domain, server, want.Hdr.Name, m)
}

// ours returns deletions (copies) of the records at want's name with this
// host's target and port, always including want itself: deleting an RR
// that is absent is a no-op (RFC 2136 §3.4.2.4).
func (p *Publisher) ours(ctx context.Context, server string, want *dns.SRV) []dns.RR {
	out := []dns.RR{dns.Copy(want)}
	q := new(dns.Msg)
	q.SetQuestion(want.Hdr.Name, dns.TypeSRV)
	q.RecursionDesired = false
	r, err := p.exchange(ctx, q, server, false)
	if err != nil || r.Rcode != dns.RcodeSuccess {
		return out
	}
	for _, rr := range r.Answer {
		s, ok := rr.(*dns.SRV)
		if !ok || !strings.EqualFold(s.Hdr.Name, want.Hdr.Name) || s.Port != want.Port || !strings.EqualFold(s.Target, want.Target) {
			continue
		}
		if s.Priority == want.Priority && s.Weight == want.Weight {
			continue // want itself
		}
		out = append(out, dns.Copy(s))
	}
	return out
}

// locate returns the server to update and the zone that holds name: the
// zone is the owner of the SOA record the server returns for name (the
// domain may be below the zone's apex), else domain itself.
func (p *Publisher) locate(ctx context.Context, domain, name string) (server, zone string, err error) {
	server, zone = p.cfg.server, domain
	if server == "" {
		server, zone, err = p.primary(ctx, domain)
		if err != nil {
			return "(primary of " + strings.TrimSuffix(domain, ".") + ")", zone, err
		}
	}
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeSOA)
	q.RecursionDesired = false
	if r, err := p.exchange(ctx, q, server, false); err == nil {
		if z := soaOwner(r, name); z != "" {
			zone = z
		}
	}
	return server, zone, nil
}

func soaOwner(r *dns.Msg, name string) string {
	for _, rr := range append(append([]dns.RR(nil), r.Answer...), r.Ns...) {
		if soa, ok := rr.(*dns.SOA); ok && dns.IsSubDomain(soa.Hdr.Name, name) {
			return dns.CanonicalName(soa.Hdr.Name)
		}
	}
	return ""
}

// primary finds domain's primary server from its SOA record's MNAME,
// asking the resolvers (recursively), as nsupdate and Windows do.
func (p *Publisher) primary(ctx context.Context, domain string) (server, zone string, err error) {
	resolvers := p.Resolvers
	if len(resolvers) == 0 {
		cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			return "", domain, fmt.Errorf("finding the primary DNS server: %v", err)
		}
		for _, h := range cc.Servers {
			resolvers = append(resolvers, net.JoinHostPort(h, cc.Port))
		}
	}
	q := new(dns.Msg)
	q.SetQuestion(dns.CanonicalName(Service+domain), dns.TypeSOA)
	lastErr := errors.New("no resolver configured")
	for _, res := range resolvers {
		r, err := p.exchange(ctx, q, res, false)
		if err != nil {
			lastErr = err
			continue
		}
		for _, rr := range append(append([]dns.RR(nil), r.Answer...), r.Ns...) {
			if soa, ok := rr.(*dns.SOA); ok {
				return net.JoinHostPort(strings.TrimSuffix(soa.Ns, "."), "53"), dns.CanonicalName(soa.Hdr.Name), nil
			}
		}
		lastErr = fmt.Errorf("%s answered %s without an SOA record", res, dns.RcodeToString[r.Rcode])
	}
	return "", domain, fmt.Errorf("finding the primary DNS server of %s (no --publish-server given): %v", strings.TrimSuffix(domain, "."), lastErr)
}

// update sends m and turns anything but a verified NOERROR into an
// *UpdateError.
func (p *Publisher) update(ctx context.Context, op, domain, server, name string, m *dns.Msg) error {
	r, err := p.exchange(ctx, m, server, true)
	ue := &UpdateError{Op: op, Domain: strings.TrimSuffix(domain, "."), Name: name, Server: server, Key: p.keyName, Err: err}
	if r == nil || !r.Response || r.Id != m.Id {
		if ue.Err == nil {
			ue.Err = errors.New("no answer")
		}
		return ue
	}
	ue.Rcode = rcodeName(r.Rcode)
	if t := r.IsTsig(); t != nil && t.Error != dns.RcodeSuccess {
		ue.TSIG = rcodeName(int(t.Error))
	}
	if r.Rcode != dns.RcodeSuccess || ue.TSIG != "" {
		return ue // error answers to bad keys come unsigned: err is moot
	}
	if err != nil {
		return ue // NOERROR whose signature did not verify
	}
	if p.TSIG != nil && r.IsTsig() == nil {
		ue.Err = errors.New("the answer is not signed") // RFC 8945 §5.3
		return ue
	}
	return nil
}

func rcodeName(c int) string {
	if s, ok := dns.RcodeToString[c]; ok {
		return s
	}
	return fmt.Sprintf("RCODE%d", c)
}

// exchange sends m over UDP (TCP when the answer is truncated), signed
// when sign is set and a key is configured.
func (p *Publisher) exchange(ctx context.Context, m *dns.Msg, server string, sign bool) (*dns.Msg, error) {
	c := &dns.Client{Net: "udp", Timeout: orDefault(p.Timeout, DefaultTimeout)}
	if sign && p.TSIG != nil {
		c.TsigSecret = map[string]string{p.keyName: p.secret}
		m.SetTsig(p.keyName, p.alg, tsigFudge, p.now().Unix())
	}
	r, _, err := c.ExchangeContext(ctx, m, server)
	if err == nil && r.Truncated {
		c.Net = "tcp"
		r, _, err = c.ExchangeContext(ctx, m, server)
	}
	return r, err
}
