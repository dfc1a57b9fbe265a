//go:build !(mips || mipsle || mips64 || mips64le || illumos || nosqlite)

package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"kmsd/internal/store"
)

// Records are written with multi-row statements of up to rowsPerStmt rows
// (and smaller ones for the rest of a batch): each statement costs a fixed
// amount in database/sql and the SQLite VM besides its rows, which made
// one statement per row the writer's main cost. Rows are applied in the
// order of the batch, so the result is the same as one statement per
// record.
const rowsPerStmt = 32

// stmtSizes are the row counts with a prepared statement, largest first;
// a batch is split greedily into them.
var stmtSizes = []int{rowsPerStmt, 8, 1}

const insertActivation = `INSERT INTO activation (received, host, peer, protocol, hresult, n_policy,
	workstation, cmid, previous_cmid, client_time, vm, license_status, binding_expiration, app_id,
	sku_id, kms_id, product, kms_name, count, epid, activation_interval, renewal_interval)
VALUES `

const activationArgs = 22

// upsertClient implements the inventory rules of package store: the
// current-state columns follow the record with the latest time (ties go to
// the record added last), the renewal time is the latest one due. SQLite
// applies the rows of one statement in order, a later row conflicting with
// an earlier one as with a table row.
const upsertClient = `INSERT INTO clients (cmid, first_seen, last_seen, workstation, peer, product,
	sku_id, kms_id, license_status, vm, last_hresult, renewal_due, clock_skew, activations)
VALUES `

const clientArgs = 13 // and activations = 1

const clientConflict = `
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

// namesQuery adds (cmid, value) pairs to table (client_names or
// client_addrs) unless the CMID already has MaxNamesPerClient of them. The
// count is taken before the statement inserts anything, so a statement
// must not hold two new values of one CMID (Add sends those one by one).
func namesQuery(table, column string, rows int) string {
	return fmt.Sprintf(`INSERT OR IGNORE INTO %[1]s (cmid, %[2]s)
SELECT v.column1, v.column2 FROM (VALUES %[3]s) AS v
WHERE (SELECT count(*) FROM %[1]s AS t WHERE t.cmid = v.column1) < %[4]d`,
		table, column, placeholders(rows, 2), store.MaxNamesPerClient)
}

// placeholders returns rows groups of n "?": "(?, ?), (?, ?)", each group
// ending with the constant values in more.
func placeholders(rows, n int, more ...string) string {
	group := "(" + strings.TrimSuffix(strings.Repeat("?, ", n)+strings.Join(more, ", "), ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(group+", ", rows), ", ")
}

// writeStmts are prepared once on the writing connection, one statement
// per kind and row count of stmtSizes.
type writeStmts struct {
	activation, client, name, addr map[int]*sql.Stmt
}

func (w *writeStmts) prepare(ctx context.Context, db *sql.DB) error {
	w.activation, w.client, w.name, w.addr = map[int]*sql.Stmt{}, map[int]*sql.Stmt{}, map[int]*sql.Stmt{}, map[int]*sql.Stmt{}
	for _, n := range stmtSizes {
		for _, p := range []struct {
			dst   map[int]*sql.Stmt
			query string
		}{
			{w.activation, insertActivation + placeholders(n, activationArgs)},
			{w.client, upsertClient + placeholders(n, clientArgs, "1") + clientConflict},
			{w.name, namesQuery("client_names", "name", n)},
			{w.addr, namesQuery("client_addrs", "addr", n)},
		} {
			st, err := db.PrepareContext(ctx, p.query)
			if err != nil {
				return fmt.Errorf("sqlite: prepare: %w", err)
			}
			p.dst[n] = st
		}
	}
	return nil
}

func (w *writeStmts) close() {
	for _, m := range []map[int]*sql.Stmt{w.activation, w.client, w.name, w.addr} {
		for _, st := range m {
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
	var b batchRows
	b.collect(recs)
	bound := map[*sql.Stmt]*sql.Stmt{} // the statements bound to tx, made once each
	for _, step := range []struct {
		stmts   map[int]*sql.Stmt
		rows    [][]any
		maxRows int
	}{{s.stmts.activation, b.activations, rowsPerStmt}, {s.stmts.client, b.clients, rowsPerStmt},
		{s.stmts.name, b.names, rowsPerStmt}, {s.stmts.name, b.namesOneByOne, 1},
		{s.stmts.addr, b.addrs, rowsPerStmt}, {s.stmts.addr, b.addrsOneByOne, 1}} {
		if err := execRows(ctx, tx, bound, step.stmts, step.rows, step.maxRows); err != nil {
			return fmt.Errorf("sqlite: add: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: add: %w", err)
	}
	return nil
}

// execRows runs rows through the statements of stmts in order, as many
// rows per statement as stmtSizes and maxRows allow; bound caches the
// statements bound to tx across calls.
func execRows(ctx context.Context, tx *sql.Tx, bound map[*sql.Stmt]*sql.Stmt, stmts map[int]*sql.Stmt, rows [][]any, maxRows int) error {
	var args []any
	for len(rows) > 0 {
		n := 1
		for _, size := range stmtSizes {
			if size <= len(rows) && size <= maxRows {
				n = size
				break
			}
		}
		args = args[:0]
		for _, r := range rows[:n] {
			args = append(args, r...)
		}
		st, ok := bound[stmts[n]]
		if !ok {
			st = tx.StmtContext(ctx, stmts[n])
			bound[stmts[n]] = st
		}
		if _, err := st.ExecContext(ctx, args...); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// batchRows turns a batch into the argument rows of each statement.
type batchRows struct {
	activations, clients, names, addrs [][]any
	namesOneByOne, addrsOneByOne       [][]any // rows that need a statement each
}

func (b *batchRows) collect(recs []store.Activation) {
	var names, addrs pairList
	for i := range recs {
		a := &recs[i]
		b.activations = append(b.activations, []any{micros(a.Received), a.Host, a.Peer, a.Protocol, a.HResult,
			a.NPolicy, a.Workstation, a.CMID, a.PreviousCMID, nullMicros(a.ClientTime), a.VM, a.LicenseStatus,
			a.BindingExpiration, a.AppID, a.SKUID, a.KMSID, a.Product, a.KMSName, a.Count, a.EPID,
			a.ActivationInterval, a.RenewalInterval})
		if a.CMID == "" {
			continue
		}
		ip := store.PeerIP(a.Peer)
		t := micros(a.Received)
		b.clients = append(b.clients, []any{a.CMID, t, t, a.Workstation, ip, a.Product, a.SKUID,
			a.KMSID, a.LicenseStatus, a.VM, a.HResult, nullMicros(store.RenewalDue(a)),
			store.ClockSkew(a).Microseconds()})
		names.add(a.CMID, a.Workstation)
		addrs.add(a.CMID, ip)
	}
	b.names, b.namesOneByOne = names.rows()
	b.addrs, b.addrsOneByOne = addrs.rows()
}

// pairList collects the distinct (CMID, value) pairs of a batch in order.
type pairList struct {
	seen  map[[2]string]bool
	pairs [][2]string
	per   map[string]int // distinct values per CMID
}

func (p *pairList) add(cmid, v string) {
	if v == "" {
		return
	}
	k := [2]string{cmid, v}
	if p.seen == nil {
		p.seen, p.per = map[[2]string]bool{}, map[string]int{}
	}
	if p.seen[k] {
		return
	}
	p.seen[k] = true
	p.pairs = append(p.pairs, k)
	p.per[cmid]++
}

// rows splits the pairs into those of CMIDs with one new value in the
// batch, which can share statements, and, in batch order, the values of
// CMIDs with several, which need a statement each (a statement counts a
// CMID's stored values before inserting any).
func (p *pairList) rows() (shared, single [][]any) {
	for _, k := range p.pairs {
		if p.per[k[0]] == 1 {
			shared = append(shared, []any{k[0], k[1]})
		} else {
			single = append(single, []any{k[0], k[1]})
		}
	}
	return shared, single
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
