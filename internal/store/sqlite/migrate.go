//go:build !(mips || mipsle || mips64 || mips64le || illumos || nosqlite)

package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"
)

// Migrations are the files migrations/NNNN_name.sql, numbered from 1
// without gaps. Each is applied once, in order, in its own transaction
// together with its row in schema_version, so a failing migration leaves
// the database at the previous version. Released files are never edited;
// a schema change is a new file.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

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
			return nil, fmt.Errorf("sqlite: migration %s: name must be NNNN_name.sql", base)
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
			return nil, fmt.Errorf("sqlite: migration %s: expected version %d", m.name, i+1)
		}
	}
	return ms, nil
}

// migrate brings db up to the latest migration in fsys and returns the
// version it found. db must begin transactions IMMEDIATE, so that two
// processes opening a new database at once apply each migration once.
func migrate(ctx context.Context, db *sql.DB, fsys fs.FS) (found int, err error) {
	ms, err := loadMigrations(fsys)
	if err != nil {
		return 0, err
	}
	const create = `CREATE TABLE IF NOT EXISTS schema_version (
	version INTEGER PRIMARY KEY,
	name    TEXT    NOT NULL,
	applied INTEGER NOT NULL -- Unix microseconds
)`
	if _, err := db.ExecContext(ctx, create); err != nil {
		return 0, fmt.Errorf("sqlite: schema_version: %w", err)
	}
	found = -1
	for {
		v, err := step(ctx, db, ms)
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
func step(ctx context.Context, db *sql.DB, ms []migration) (int, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("sqlite: migrate: %w", err)
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("sqlite: schema version: %w", err)
	}
	switch {
	case v > len(ms):
		return v, fmt.Errorf("%w: the database is at version %d, this kmsd knows up to %d; use a newer kmsd",
			ErrSchemaTooNew, v, len(ms))
	case v == len(ms):
		return v, nil
	}
	m := ms[v]
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return v, fmt.Errorf("sqlite: migration %s: %w", m.name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, name, applied) VALUES (?, ?, ?)`,
		m.version, m.name, time.Now().UnixMicro()); err != nil {
		return v, fmt.Errorf("sqlite: migration %s: %w", m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return v, fmt.Errorf("sqlite: migration %s: %w", m.name, err)
	}
	return v, nil
}
