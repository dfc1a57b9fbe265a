package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"kmsd/internal/store"
)

// activationCols are the columns of insertActivations by type: two
// times, a boolean, twelve texts and seven numbers (the arrays of
// activationArrays, in this order).
const activationCols = `received, client_time, vm,
	host, peer, protocol, workstation, cmid, previous_cmid, app_id, sku_id, kms_id, product, kms_name, epid,
	hresult, n_policy, license_status, binding_expiration, count, activation_interval, renewal_interval`

// insertActivations inserts a batch from one array per column, in batch
// order (so that IDs follow it).
const insertActivations = `INSERT INTO activation (` + activationCols + `)
SELECT ` + activationCols + `
FROM unnest($1::timestamptz[], $2::timestamptz[], $3::boolean[],
	$4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
	$12::text[], $13::text[], $14::text[], $15::text[],
	$16::bigint[], $17::bigint[], $18::bigint[], $19::bigint[], $20::bigint[], $21::bigint[], $22::bigint[])
	WITH ORDINALITY AS r(` + activationCols + `, ord)
ORDER BY ord`

// lockClients creates the missing inventory rows of $1 (CMIDs sorted
// bytewise, without repeats) as placeholders (activations 0) and locks
// every row, in that order, until the transaction ends. DO UPDATE rather
// than DO NOTHING: it locks the existing row and returns it, also when
// another transaction inserted it meanwhile.
const lockClients = `INSERT INTO clients AS c (cmid, first_seen, last_seen)
SELECT cmid, t, t FROM unnest($1::text[], $2::timestamptz[]) WITH ORDINALITY AS u(cmid, t, ord) ORDER BY ord
ON CONFLICT (cmid) DO UPDATE SET cmid = excluded.cmid
RETURNING ` + clientColumns

const updateClient = `UPDATE clients SET first_seen = $2, last_seen = $3, workstation = $4, peer = $5,
	product = $6, sku_id = $7, kms_id = $8, license_status = $9, vm = $10, last_hresult = $11,
	renewal_due = $12, clock_skew = $13, activations = $14, names = $15, addrs = $16
WHERE cmid = $1`

// Add inserts recs and updates the inventory in one transaction.
func (s *Store) Add(ctx context.Context, recs []store.Activation) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	if len(recs) == 0 {
		return nil
	}
	if err := s.add(ctx, recs); err != nil {
		return fmt.Errorf("postgres: add: %w", err)
	}
	return nil
}

func (s *Store) add(ctx context.Context, recs []store.Activation) error {
	recs = slices.Clone(recs)
	for i := range recs {
		a := &recs[i]
		a.Received, a.ClientTime = micro(a.Received), micro(a.ClientTime)
		for _, p := range [...]*string{&a.Host, &a.Peer, &a.Protocol, &a.Workstation, &a.CMID, &a.PreviousCMID,
			&a.AppID, &a.SKUID, &a.KMSID, &a.Product, &a.KMSName, &a.EPID} {
			*p = storable(*p)
		}
	}
	// The batch's CMIDs in byte order (the lock order), each with the time
	// of its first record for a new row.
	first := map[string]time.Time{}
	for i := range recs {
		if a := &recs[i]; a.CMID != "" {
			if _, ok := first[a.CMID]; !ok {
				first[a.CMID] = a.Received
			}
		}
	}
	cmids := make([]string, 0, len(first))
	for c := range first {
		cmids = append(cmids, c)
	}
	slices.Sort(cmids)
	times := make([]time.Time, len(cmids))
	for i, c := range cmids {
		times[i] = first[c]
	}

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	b := &pgx.Batch{}
	b.Queue(insertActivations, activationArrays(recs)...)
	if len(cmids) > 0 {
		b.Queue(lockClients, cmids, times)
	}
	br := tx.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		br.Close()
		return err
	}
	inv := make(map[string]*store.Client, len(cmids))
	if len(cmids) > 0 {
		rows, err := br.Query()
		if err == nil {
			err = collectClients(rows, func(c store.Client) {
				id := c.CMID
				if c.Activations == 0 { // a placeholder: a new client
					c = store.Client{}
				}
				inv[id] = &c
			})
		}
		if err != nil {
			br.Close()
			return err
		}
	}
	if err := br.Close(); err != nil {
		return err
	}
	if len(cmids) > 0 {
		if err := writeClients(ctx, tx, recs, cmids, inv); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// writeClients merges recs into the locked rows inv and writes them back.
func writeClients(ctx context.Context, tx pgx.Tx, recs []store.Activation, cmids []string, inv map[string]*store.Client) error {
	for i := range recs {
		a := &recs[i]
		if a.CMID == "" {
			continue
		}
		c := inv[a.CMID]
		if c == nil {
			c = &store.Client{} // the row was inserted: RETURNING names every one
			inv[a.CMID] = c
		}
		c.Apply(a)
	}
	b := &pgx.Batch{}
	for _, id := range cmids {
		c := inv[id]
		b.Queue(updateClient, c.CMID, c.FirstSeen, c.LastSeen, c.Workstation, c.Peer, c.Product, c.SKUID,
			c.KMSID, int64(c.LicenseStatus), c.VM, int64(c.LastHResult), nullTime(c.RenewalDue),
			c.ClockSkew.Microseconds(), int64(c.Activations), nonNil(c.Names), nonNil(c.Addresses))
	}
	br := tx.SendBatch(ctx, b)
	for _, id := range cmids {
		tag, err := br.Exec()
		if err == nil && tag.RowsAffected() != 1 {
			err = fmt.Errorf("inventory row of %s vanished under its lock", id)
		}
		if err != nil {
			br.Close()
			return err
		}
	}
	return br.Close()
}

// activationArrays turns recs into the column arrays of insertActivations.
func activationArrays(recs []store.Activation) []any {
	n := len(recs)
	received, clientTime, vm := make([]time.Time, n), make([]*time.Time, n), make([]bool, n)
	var texts [12][]string
	var nums [7][]int64
	for j := range texts {
		texts[j] = make([]string, n)
	}
	for j := range nums {
		nums[j] = make([]int64, n)
	}
	for i := range recs {
		a := &recs[i]
		received[i], clientTime[i], vm[i] = a.Received, nullTime(a.ClientTime), a.VM
		for j, v := range [...]string{a.Host, a.Peer, a.Protocol, a.Workstation, a.CMID, a.PreviousCMID,
			a.AppID, a.SKUID, a.KMSID, a.Product, a.KMSName, a.EPID} {
			texts[j][i] = v
		}
		for j, v := range [...]uint32{a.HResult, a.NPolicy, a.LicenseStatus, a.BindingExpiration, a.Count,
			a.ActivationInterval, a.RenewalInterval} {
			nums[j][i] = int64(v)
		}
	}
	args := []any{received, clientTime, vm}
	for _, t := range texts {
		args = append(args, t)
	}
	for _, v := range nums {
		args = append(args, v)
	}
	return args
}

// storable is s as PostgreSQL text takes it: valid UTF-8 without NUL. A
// string it refuses would fail its batch on every retry and hold up the
// queue behind it.
func storable(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.ReplaceAll(s, "\x00", "")
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Prune deletes the records received before before and the clients last
// seen before it, in one transaction. Client rows are locked in the same
// order as Add locks them, so the two never deadlock; a client that a
// concurrent Add makes recent again is kept.
func (s *Store) Prune(ctx context.Context, before time.Time) (int64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	n, err := s.prune(ctx, micro(before))
	if err != nil {
		return 0, fmt.Errorf("postgres: prune: %w", err)
	}
	return n, nil
}

func (s *Store) prune(ctx context.Context, before time.Time) (int64, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	tag, err := tx.Exec(ctx, `DELETE FROM activation WHERE received < $1`, before)
	if err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM clients WHERE last_seen < $1 AND cmid IN (
	SELECT cmid FROM clients WHERE last_seen < $1 ORDER BY cmid COLLATE "C" FOR UPDATE)`, before); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}
