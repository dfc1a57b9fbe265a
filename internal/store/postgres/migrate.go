package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Migrations are the files migrations/NNNN_name.sql, numbered from 1
// without gaps. Each is applied once, in order, in its own transaction
// together with its row in schema_version, so a failing migration leaves
// the database at the previous version. Released files are never edited;
// a schema change is a new file.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationLock is the key of the session advisory lock held while the
// schema is checked and migrated ("kmsd" and a schema-lock tag), so that
// hosts starting at once take turns.
const migrationLock int64 = 0x6b6d7364_5343484d

type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads migrations/*.sql from fsys in version order.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	ms := make([]migration, 0, len(names))
	for _, n := range names {
		base := path.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("postgres: migration %s: name must be NNNN_name.sql", base)
		}
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	// Glob returns names sorted, and the numbers are zero-padded.
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("postgres: migration %s: expected version %d", m.name, i+1)
		}
	}
	return ms, nil
}

// migrate brings the database up to the latest migration in fsys and
// returns the version it found. It holds the advisory lock migrationLock
// on conn while it works; the caller closes conn afterwards, which releases
// the lock even when unlocking failed.
func migrate(ctx context.Context, conn *pgx.Conn, fsys fs.FS) (found int, err error) {
	ms, err := loadMigrations(fsys)
	if err != nil {
		return 0, err
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return 0, fmt.Errorf("postgres: waiting for the schema lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLock)
	// Machine names are Unicode: a database in another encoding would
	// refuse some of them, and their batches would fail on every retry.
	var enc string
	if err := conn.QueryRow(ctx, `SELECT current_setting('server_encoding')`).Scan(&enc); err != nil {
		return 0, fmt.Errorf("postgres: server encoding: %w", err)
	}
	if enc != "UTF8" && enc != "SQL_ASCII" {
		return 0, fmt.Errorf("postgres: the database's encoding is %s; kmsd needs UTF8 (CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE template0)", enc)
	}
	const create = `CREATE TABLE IF NOT EXISTS schema_version (
	version integer     PRIMARY KEY,
	name    text        NOT NULL,
	applied timestamptz NOT NULL DEFAULT now()
)`
	if _, err := conn.Exec(ctx, create); err != nil {
		return 0, fmt.Errorf("postgres: schema_version: %w", err)
	}
	found = -1
	for {
		v, err := step(ctx, conn, ms)
		if found < 0 {
			found = v
		}
		if err != nil || v == len(ms) {
			return found, err
		}
	}
}

// step applies the migration after the current version, if any, and
// returns the version it found.
func step(ctx context.Context, conn *pgx.Conn, ms []migration) (int, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("postgres: migrate: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var v int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("postgres: schema version: %w", err)
	}
	switch {
	case v > len(ms):
		return v, fmt.Errorf("%w: the database is at version %d, this kmsd knows up to %d; use a newer kmsd",
			ErrSchemaTooNew, v, len(ms))
	case v == len(ms):
		return v, nil
	}
	m := ms[v]
	// No arguments: the simple protocol, which runs several statements.
	if _, err := tx.Exec(ctx, m.sql); err != nil {
		return v, fmt.Errorf("postgres: migration %s: %w", m.name, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
		return v, fmt.Errorf("postgres: migration %s: %w", m.name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return v, fmt.Errorf("postgres: migration %s: %w", m.name, err)
	}
	return v, nil
}
