//go:build !(mips || mipsle || mips64 || mips64le || illumos || nosqlite)

package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"kmsd/internal/store"
)

const insertActivation = `INSERT INTO activation (received, host, peer, protocol, hresult, n_policy,
	workstation, cmid, previous_cmid, client_time, vm, license_status, binding_expiration, app_id,
	sku_id, kms_id, product, kms_name, count, epid, activation_interval, renewal_interval)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// upsertClient implements the inventory rules of package store: the
// current-state columns follow the record with the latest time (ties go to
// the record added last), the renewal time is the latest one due.
const upsertClient = `INSERT INTO clients (cmid, first_seen, last_seen, workstation, peer, product,
	sku_id, kms_id, license_status, vm, last_hresult, renewal_due, clock_skew, activations)
VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 1)
ON CONFLICT (cmid) DO UPDATE SET
	first_seen     = min(clients.first_seen, excluded.first_seen),
	last_seen      = max(clients.last_seen, excluded.last_seen),
	workstation    = iif(excluded.last_seen >= clients.last_seen, excluded.workstation, clients.workstation),
	peer           = iif(excluded.last_seen >= clients.last_seen, excluded.peer, clients.peer),
	product        = iif(excluded.last_seen >= clients.last_seen, excluded.product, clients.product),
	sku_id         = iif(excluded.last_seen >= clients.last_seen, excluded.sku_id, clients.sku_id),
	kms_id         = iif(excluded.last_seen >= clients.last_seen, excluded.kms_id, clients.kms_id),
	license_status = iif(excluded.last_seen >= clients.last_seen, excluded.license_status, clients.license_status),
	vm             = iif(excluded.last_seen >= clients.last_seen, excluded.vm, clients.vm),
	last_hresult   = iif(excluded.last_seen >= clients.last_seen, excluded.last_hresult, clients.last_hresult),
	clock_skew     = iif(excluded.last_seen >= clients.last_seen, excluded.clock_skew, clients.clock_skew),
	renewal_due    = max(coalesce(clients.renewal_due, excluded.renewal_due), coalesce(excluded.renewal_due, clients.renewal_due)),
	activations    = clients.activations + 1`

var (
	insertName = fmt.Sprintf(`INSERT OR IGNORE INTO client_names (cmid, name)
SELECT ?1, ?2 WHERE (SELECT count(*) FROM client_names WHERE cmid = ?1) < %d`, store.MaxNamesPerClient)
	insertAddr = fmt.Sprintf(`INSERT OR IGNORE INTO client_addrs (cmid, addr)
SELECT ?1, ?2 WHERE (SELECT count(*) FROM client_addrs WHERE cmid = ?1) < %d`, store.MaxNamesPerClient)
)

// writeStmts are prepared once on the writing connection.
type writeStmts struct {
	activation, client, name, addr *sql.Stmt
}

func (w *writeStmts) prepare(ctx context.Context, db *sql.DB) error {
	for _, p := range []struct {
		dst   **sql.Stmt
		query string
	}{{&w.activation, insertActivation}, {&w.client, upsertClient}, {&w.name, insertName}, {&w.addr, insertAddr}} {
		st, err := db.PrepareContext(ctx, p.query)
		if err != nil {
			return fmt.Errorf("sqlite: prepare: %w", err)
		}
		*p.dst = st
	}
	return nil
}

func (w *writeStmts) close() {
	for _, st := range []*sql.Stmt{w.activation, w.client, w.name, w.addr} {
		if st != nil {
			st.Close()
		}
	}
}

// Add inserts recs and updates the inventory in one transaction.
func (s *Store) Add(ctx context.Context, recs []store.Activation) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	if len(recs) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: add: %w", err)
	}
	defer tx.Rollback()
	st := writeStmts{tx.StmtContext(ctx, s.stmts.activation), tx.StmtContext(ctx, s.stmts.client),
		tx.StmtContext(ctx, s.stmts.name), tx.StmtContext(ctx, s.stmts.addr)}
	for i := range recs {
		if err := st.add(ctx, &recs[i]); err != nil {
			return fmt.Errorf("sqlite: add: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: add: %w", err)
	}
	return nil
}

func (w *writeStmts) add(ctx context.Context, a *store.Activation) error {
	_, err := w.activation.ExecContext(ctx, micros(a.Received), a.Host, a.Peer, a.Protocol, a.HResult,
		a.NPolicy, a.Workstation, a.CMID, a.PreviousCMID, nullMicros(a.ClientTime), a.VM, a.LicenseStatus,
		a.BindingExpiration, a.AppID, a.SKUID, a.KMSID, a.Product, a.KMSName, a.Count, a.EPID,
		a.ActivationInterval, a.RenewalInterval)
	if err != nil || a.CMID == "" {
		return err
	}
	ip := store.PeerIP(a.Peer)
	_, err = w.client.ExecContext(ctx, a.CMID, micros(a.Received), a.Workstation, ip, a.Product, a.SKUID,
		a.KMSID, a.LicenseStatus, a.VM, a.HResult, nullMicros(store.RenewalDue(a)),
		store.ClockSkew(a).Microseconds())
	if err != nil {
		return err
	}
	if a.Workstation != "" {
		if _, err := w.name.ExecContext(ctx, a.CMID, a.Workstation); err != nil {
			return err
		}
	}
	if ip != "" {
		_, err = w.addr.ExecContext(ctx, a.CMID, ip)
	}
	return err
}

// Prune deletes the records received before before and the clients last
// seen before it, in one transaction.
func (s *Store) Prune(ctx context.Context, before time.Time) (int64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("sqlite: prune: %w", err)
	}
	defer tx.Rollback()
	t := micros(before)
	res, err := tx.ExecContext(ctx, `DELETE FROM activation WHERE received < ?`, t)
	if err != nil {
		return 0, fmt.Errorf("sqlite: prune: %w", err)
	}
	n, _ := res.RowsAffected()
	var errs []error
	for _, q := range []string{
		`DELETE FROM client_names WHERE cmid IN (SELECT cmid FROM clients WHERE last_seen < ?)`,
		`DELETE FROM client_addrs WHERE cmid IN (SELECT cmid FROM clients WHERE last_seen < ?)`,
		`DELETE FROM clients WHERE last_seen < ?`,
	} {
		_, err := tx.ExecContext(ctx, q, t)
		errs = append(errs, err)
	}
	if err := errors.Join(append(errs, tx.Commit())...); err != nil {
		return 0, fmt.Errorf("sqlite: prune: %w", err)
	}
	return n, nil
}
