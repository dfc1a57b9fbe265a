package client

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"sort"
	"strconv"
	"strings"
)

// Resolver is the part of net.Resolver SRV discovery needs.
type Resolver interface {
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
}

// LookupSRV finds KMS hosts through _vlmcs._tcp SRV records of domain
// (empty: the resolver's own search domain) and orders them as vlmcs does
// (kms-client.md §1): by priority, then by a weighted random score; with
// keepOrder the DNS order is kept.
func LookupSRV(ctx context.Context, r Resolver, domain string, keepOrder bool, rnd io.Reader) ([]string, error) {
	domain = strings.TrimPrefix(domain, ".")
	_, recs, err := r.LookupSRV(ctx, "vlmcs", "tcp", domain)
	if err != nil {
		return nil, fmt.Errorf("no KMS servers found for %q: %w", domain, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("no KMS servers found for %q", domain)
	}
	if !keepOrder {
		OrderSRV(recs, rnd)
	}
	out := make([]string, len(recs))
	for i, s := range recs {
		out[i] = net.JoinHostPort(strings.TrimSuffix(s.Target, "."), strconv.Itoa(int(s.Port)))
	}
	return out, nil
}

// OrderSRV sorts records by priority ascending and, within a priority, by
// the score u × floor(sqrt(1000 × weight)) with u uniform in 0..255,
// higher first (kms-client.md §1).
func OrderSRV(recs []*net.SRV, rnd io.Reader) {
	score := make(map[*net.SRV]int, len(recs))
	for _, s := range recs {
		var b [1]byte
		io.ReadFull(rnd, b[:])
		score[s] = int(b[0]) * int(math.Sqrt(1000*float64(s.Weight)))
	}
	sort.SliceStable(recs, func(i, j int) bool {
		if recs[i].Priority != recs[j].Priority {
			return recs[i].Priority < recs[j].Priority
		}
		return score[recs[i]] > score[recs[j]]
	})
}
