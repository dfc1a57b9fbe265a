package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"kmsd/internal/store"
	"kmsd/internal/wire"
)

const activationColumns = `id, received, host, peer, protocol, hresult, n_policy, workstation, cmid,
	previous_cmid, client_time, vm, license_status, binding_expiration, app_id, sku_id, kms_id, product,
	kms_name, count, epid, activation_interval, renewal_interval`

const clientColumns = `cmid, first_seen, last_seen, workstation, peer, product, sku_id, kms_id,
	license_status, vm, last_hresult, renewal_due, clock_skew, activations, names, addrs`

// where collects the conditions and arguments of a query, numbering the
// placeholders.
type where struct {
	conds []string
	args  []any
}

// arg adds an argument and returns its placeholder.
func (w *where) arg(v any) string {
	w.args = append(w.args, v)
	return fmt.Sprintf("$%d", len(w.args))
}

func (w *where) add(cond string) { w.conds = append(w.conds, cond) }

func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// page appends LIMIT and OFFSET.
func (w *where) page(q string, limit, offset int) string {
	if limit > 0 {
		q += " LIMIT " + w.arg(limit)
	}
	if offset > 0 {
		q += " OFFSET " + w.arg(offset)
	}
	return q
}

// Activations returns the matching records, newest first.
func (s *Store) Activations(ctx context.Context, f store.ActivationFilter) ([]store.Activation, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	var w where
	if !f.Since.IsZero() {
		w.add("received >= " + w.arg(f.Since))
	}
	if !f.Until.IsZero() {
		w.add("received < " + w.arg(f.Until))
	}
	if f.CMID != "" {
		w.add("cmid = " + w.arg(f.CMID))
	}
	if f.KMSID != "" {
		w.add("kms_id = " + w.arg(f.KMSID))
	}
	if f.HResult != nil {
		w.add("hresult = " + w.arg(int64(*f.HResult)))
	}
	q := w.page("SELECT "+activationColumns+" FROM activation"+w.String()+" ORDER BY received DESC, id DESC",
		f.Limit, f.Offset)
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: activations: %w", err)
	}
	defer rows.Close()
	var out []store.Activation
	for rows.Next() {
		var a store.Activation
		var ct *time.Time
		var hresult, nPolicy, licenseStatus, bindingExp, count, actInt, renewInt int64
		if err := rows.Scan(&a.ID, &a.Received, &a.Host, &a.Peer, &a.Protocol, &hresult, &nPolicy,
			&a.Workstation, &a.CMID, &a.PreviousCMID, &ct, &a.VM, &licenseStatus, &bindingExp,
			&a.AppID, &a.SKUID, &a.KMSID, &a.Product, &a.KMSName, &count, &a.EPID, &actInt,
			&renewInt); err != nil {
			return nil, fmt.Errorf("postgres: activations: %w", err)
		}
		a.Received, a.ClientTime = a.Received.UTC(), fromNull(ct)
		a.HResult, a.NPolicy, a.LicenseStatus = uint32(hresult), uint32(nPolicy), uint32(licenseStatus)
		a.BindingExpiration, a.Count = uint32(bindingExp), uint32(count)
		a.ActivationInterval, a.RenewalInterval = uint32(actInt), uint32(renewInt)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: activations: %w", err)
	}
	return out, nil
}

// clientOrder maps ClientFilter.OrderBy to ORDER BY clauses; text sorts
// in byte order (COLLATE "C") whatever the database's collation.
var clientOrder = map[string]string{
	"":                     `last_seen DESC, cmid COLLATE "C"`,
	store.OrderLastSeen:    `last_seen DESC, cmid COLLATE "C"`,
	store.OrderFirstSeen:   `first_seen DESC, cmid COLLATE "C"`,
	store.OrderWorkstation: `workstation COLLATE "C", cmid COLLATE "C"`,
	store.OrderProduct:     `product COLLATE "C", cmid COLLATE "C"`,
	store.OrderRenewalDue:  `renewal_due NULLS LAST, cmid COLLATE "C"`,
}

// lowerASCII is SQL folding only ASCII letters, as the filter rules say
// (lower() and ILIKE follow the database's locale).
func lowerASCII(expr string) string {
	return "translate(" + expr + ", 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')"
}

// Clients returns the matching inventory rows.
func (s *Store) Clients(ctx context.Context, f store.ClientFilter) ([]store.Client, error) {
	order, ok := clientOrder[f.OrderBy]
	if !ok {
		return nil, store.CheckOrder(f.OrderBy)
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	var w where
	if !f.SeenSince.IsZero() {
		w.add("last_seen >= " + w.arg(f.SeenSince))
	}
	if f.KMSID != "" {
		w.add("kms_id = " + w.arg(f.KMSID))
	}
	if f.Search != "" {
		// strpos, not LIKE: the search text is literal.
		p := w.arg(wire.ASCIILower(f.Search))
		var alts []string
		for _, col := range []string{"cmid", "workstation", "product", "peer"} {
			alts = append(alts, "strpos("+lowerASCII(col)+", "+p+") > 0")
		}
		alts = append(alts, "EXISTS (SELECT 1 FROM unnest(names || addrs) AS v WHERE strpos("+lowerASCII("v")+", "+p+") > 0)")
		w.add("(" + strings.Join(alts, " OR ") + ")")
	}
	q := w.page("SELECT "+clientColumns+" FROM clients"+w.String()+" ORDER BY "+order, f.Limit, f.Offset)
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: clients: %w", err)
	}
	var out []store.Client
	if err := collectClients(rows, func(c store.Client) { out = append(out, c) }); err != nil {
		return nil, fmt.Errorf("postgres: clients: %w", err)
	}
	return out, nil
}

// collectClients scans rows of clientColumns, calls f with each and closes
// rows.
func collectClients(rows pgx.Rows, f func(store.Client)) error {
	defer rows.Close()
	for rows.Next() {
		var c store.Client
		var due *time.Time
		var licenseStatus, lastHResult, skew, activations int64
		if err := rows.Scan(&c.CMID, &c.FirstSeen, &c.LastSeen, &c.Workstation, &c.Peer, &c.Product, &c.SKUID,
			&c.KMSID, &licenseStatus, &c.VM, &lastHResult, &due, &skew, &activations, &c.Names,
			&c.Addresses); err != nil {
			return err
		}
		c.FirstSeen, c.LastSeen, c.RenewalDue = c.FirstSeen.UTC(), c.LastSeen.UTC(), fromNull(due)
		c.LicenseStatus, c.LastHResult = uint32(licenseStatus), uint32(lastHResult)
		c.ClockSkew = time.Duration(skew) * time.Microsecond
		c.Activations = int(activations)
		if len(c.Names) == 0 {
			c.Names = nil
		}
		if len(c.Addresses) == 0 {
			c.Addresses = nil
		}
		f(c)
	}
	return rows.Err()
}

// ActiveClients counts the distinct CMIDs activated (HResult 0) for kmsID
// at or after since, by any host writing to the database.
func (s *Store) ActiveClients(ctx context.Context, kmsID string, since time.Time) (int, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	var w where
	w.add("kms_id = " + w.arg(kmsID))
	w.add("hresult = 0")
	w.add("cmid <> ''")
	if !since.IsZero() {
		w.add("received >= " + w.arg(since))
	}
	var n int
	if err := s.pool.QueryRow(ctx, "SELECT count(DISTINCT cmid) FROM activation"+w.String(), w.args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: active clients: %w", err)
	}
	return n, nil
}
