//go:build !(mips || mipsle || mips64 || mips64le || illumos || nosqlite)

package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"kmsd/internal/store"
)

const activationColumns = `id, received, host, peer, protocol, hresult, n_policy, workstation, cmid,
	previous_cmid, client_time, vm, license_status, binding_expiration, app_id, sku_id, kms_id, product,
	kms_name, count, epid, activation_interval, renewal_interval`

// where collects the conditions and arguments of a query.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// page appends LIMIT and OFFSET.
func (w *where) page(q string, limit, offset int) string {
	if limit <= 0 && offset <= 0 {
		return q
	}
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	w.args = append(w.args, limit, max(offset, 0))
	return q + " LIMIT ? OFFSET ?"
}

// Activations returns the matching records, newest first.
func (s *Store) Activations(ctx context.Context, f store.ActivationFilter) ([]store.Activation, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	var w where
	if !f.Since.IsZero() {
		w.add("received >= ?", micros(f.Since))
	}
	if !f.Until.IsZero() {
		w.add("received < ?", micros(f.Until))
	}
	if f.CMID != "" {
		w.add("cmid = ?", f.CMID)
	}
	if f.KMSID != "" {
		w.add("kms_id = ?", f.KMSID)
	}
	if f.HResult != nil {
		w.add("hresult = ?", *f.HResult)
	}
	q := w.page("SELECT "+activationColumns+" FROM activation"+w.String()+" ORDER BY received DESC, id DESC",
		f.Limit, f.Offset)
	rows, err := s.r.QueryContext(ctx, q, w.args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: activations: %w", err)
	}
	defer rows.Close()
	var out []store.Activation
	for rows.Next() {
		var a store.Activation
		var recv int64
		var ct sql.NullInt64
		if err := rows.Scan(&a.ID, &recv, &a.Host, &a.Peer, &a.Protocol, &a.HResult, &a.NPolicy,
			&a.Workstation, &a.CMID, &a.PreviousCMID, &ct, &a.VM, &a.LicenseStatus, &a.BindingExpiration,
			&a.AppID, &a.SKUID, &a.KMSID, &a.Product, &a.KMSName, &a.Count, &a.EPID, &a.ActivationInterval,
			&a.RenewalInterval); err != nil {
			return nil, fmt.Errorf("sqlite: activations: %w", err)
		}
		a.Received, a.ClientTime = fromMicros(recv), fromNullMicros(ct)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: activations: %w", err)
	}
	return out, nil
}

const clientColumns = `c.cmid, c.first_seen, c.last_seen, c.workstation, c.peer, c.product, c.sku_id,
	c.kms_id, c.license_status, c.vm, c.last_hresult, c.renewal_due, c.clock_skew, c.activations,
	(SELECT json_group_array(name) FROM client_names n WHERE n.cmid = c.cmid),
	(SELECT json_group_array(addr) FROM client_addrs a WHERE a.cmid = c.cmid)`

var clientOrder = map[string]string{
	"":                     "c.last_seen DESC, c.cmid",
	store.OrderLastSeen:    "c.last_seen DESC, c.cmid",
	store.OrderFirstSeen:   "c.first_seen DESC, c.cmid",
	store.OrderWorkstation: "c.workstation, c.cmid",
	store.OrderProduct:     "c.product, c.cmid",
	store.OrderRenewalDue:  "c.renewal_due IS NULL, c.renewal_due, c.cmid",
}

// likeEscaper makes a search string match literally in LIKE ... ESCAPE '\'.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

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
		w.add("c.last_seen >= ?", micros(f.SeenSince))
	}
	if f.KMSID != "" {
		w.add("c.kms_id = ?", f.KMSID)
	}
	if f.Search != "" {
		p := "%" + likeEscaper.Replace(f.Search) + "%"
		w.add(`(c.cmid LIKE ? ESCAPE '\' OR c.workstation LIKE ? ESCAPE '\' OR c.product LIKE ? ESCAPE '\'
	OR c.peer LIKE ? ESCAPE '\'
	OR EXISTS (SELECT 1 FROM client_names n WHERE n.cmid = c.cmid AND n.name LIKE ? ESCAPE '\')
	OR EXISTS (SELECT 1 FROM client_addrs a WHERE a.cmid = c.cmid AND a.addr LIKE ? ESCAPE '\'))`,
			p, p, p, p, p, p)
	}
	q := w.page("SELECT "+clientColumns+" FROM clients c"+w.String()+" ORDER BY "+order, f.Limit, f.Offset)
	rows, err := s.r.QueryContext(ctx, q, w.args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: clients: %w", err)
	}
	defer rows.Close()
	var out []store.Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: clients: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: clients: %w", err)
	}
	return out, nil
}

func scanClient(rows *sql.Rows) (store.Client, error) {
	var c store.Client
	var first, last, skew int64
	var due sql.NullInt64
	var names, addrs string
	if err := rows.Scan(&c.CMID, &first, &last, &c.Workstation, &c.Peer, &c.Product, &c.SKUID, &c.KMSID,
		&c.LicenseStatus, &c.VM, &c.LastHResult, &due, &skew, &c.Activations, &names, &addrs); err != nil {
		return c, err
	}
	c.FirstSeen, c.LastSeen, c.RenewalDue = fromMicros(first), fromMicros(last), fromNullMicros(due)
	c.ClockSkew = time.Duration(skew) * time.Microsecond
	if err := json.Unmarshal([]byte(names), &c.Names); err != nil {
		return c, err
	}
	if err := json.Unmarshal([]byte(addrs), &c.Addresses); err != nil {
		return c, err
	}
	slices.Sort(c.Names)
	slices.Sort(c.Addresses)
	return c, nil
}

// ActiveClients counts the distinct CMIDs activated (HResult 0) for kmsID
// at or after since.
func (s *Store) ActiveClients(ctx context.Context, kmsID string, since time.Time) (int, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT count(DISTINCT cmid) FROM activation
WHERE kms_id = ? AND received >= ? AND hresult = 0 AND cmid <> ''`, kmsID, micros(since)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("sqlite: active clients: %w", err)
	}
	return n, nil
}
