package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// SRVRecord is one _vlmcs._tcp answer.
type SRVRecord struct {
	Target   string
	Port     uint16
	Priority uint16
	Weight   uint16
}

// Addr is host:port of the record.
func (r SRVRecord) Addr() string {
	return net.JoinHostPort(strings.TrimSuffix(r.Target, "."), strconv.Itoa(int(r.Port)))
}

// SRVLookup queries SRV records in the order the DNS server sent them.
type SRVLookup struct {
	// Servers are DNS servers as host:port; empty means /etc/resolv.conf.
	Servers []string
	Timeout time.Duration
}

// ErrNoHosts means discovery found no KMS host.
var ErrNoHosts = errors.New("client: no KMS servers found")

// Lookup returns the _vlmcs._tcp records of domain; an empty domain means
// the resolver's search domains, tried in order.
func (s *SRVLookup) Lookup(ctx context.Context, domain string) ([]SRVRecord, []string, error) {
	servers, search := s.Servers, []string(nil)
	if len(servers) == 0 || domain == "" {
		cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			return nil, nil, fmt.Errorf("%w: reading resolver configuration: %v", ErrNoHosts, err)
		}
		if len(servers) == 0 {
			for _, h := range cc.Servers {
				servers = append(servers, net.JoinHostPort(h, cc.Port))
			}
		}
		search = cc.Search
	}
	names := []string{domain}
	if domain == "" {
		names = search
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	var warnings []string
	var lastErr error = ErrNoHosts
	for _, name := range names {
		q := new(dns.Msg)
		q.SetQuestion(dns.Fqdn("_vlmcs._tcp."+strings.TrimPrefix(name, ".")), dns.TypeSRV)
		for _, srv := range servers {
			c := &dns.Client{Timeout: timeout}
			resp, _, err := c.ExchangeContext(ctx, q, srv)
			if err == nil && resp.Truncated {
				c.Net = "tcp"
				resp, _, err = c.ExchangeContext(ctx, q, srv)
			}
			if err != nil {
				lastErr = err
				continue
			}
			var recs []SRVRecord
			for _, rr := range resp.Answer {
				s, ok := rr.(*dns.SRV)
				if !ok || rr.Header().Class != dns.ClassINET {
					warnings = append(warnings, "skipping a non-SRV answer: "+rr.String())
					continue
				}
				recs = append(recs, SRVRecord{Target: s.Target, Port: s.Port, Priority: s.Priority, Weight: s.Weight})
			}
			if len(recs) > 0 {
				return recs, warnings, nil
			}
			lastErr = fmt.Errorf("%w for %s", ErrNoHosts, q.Question[0].Name)
			break
		}
	}
	return nil, warnings, fmt.Errorf("%w: %v", ErrNoHosts, lastErr)
}

// OrderSRV sorts records by priority ascending and, within a priority, by
// the score u × floor(sqrt(1000 × weight)) with u uniform in 0..255,
// higher first (kms-client.md §1). A weight of 0 always scores 0.
func OrderSRV(recs []SRVRecord, rnd io.Reader) {
	score := make([]int, len(recs))
	idx := make([]int, len(recs))
	for i, r := range recs {
		var b [1]byte
		io.ReadFull(rnd, b[:])
		score[i] = int(b[0]) * int(math.Sqrt(1000*float64(r.Weight)))
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		ra, rb := recs[idx[a]], recs[idx[b]]
		if ra.Priority != rb.Priority {
			return ra.Priority < rb.Priority
		}
		return score[idx[a]] > score[idx[b]]
	})
	sorted := make([]SRVRecord, len(recs))
	for i, j := range idx {
		sorted[i] = recs[j]
	}
	copy(recs, sorted)
}
