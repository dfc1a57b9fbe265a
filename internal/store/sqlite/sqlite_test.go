//go:build !(mips || mipsle || mips64 || mips64le || illumos || nosqlite)

package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kmsd/internal/store"
	"kmsd/internal/store/sqlite"
	"kmsd/internal/store/storetest"
)

func TestContractMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(sqlite.Memory)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestContractFile(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(filepath.Join(t.TempDir(), "kmsd.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestReopen checks that records survive closing and that a path with
// URI-special characters is taken literally.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a?b#c%d.db")
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Add(ctx, []store.Activation{storetest.Rec(1, 0), storetest.Rec(1, time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cs, err := s.Clients(ctx, store.ClientFilter{})
	if err != nil || len(cs) != 1 || cs[0].Activations != 2 {
		t.Fatalf("after reopen: %+v, %v", cs, err)
	}
}

func openRaw(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

type versionRow struct {
	version int
	name    string
	applied int64
}

func versions(t *testing.T, path string) []versionRow {
	t.Helper()
	rows, err := openRaw(t, path).Query(`SELECT version, name, applied FROM schema_version ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []versionRow
	for rows.Next() {
		var v versionRow
		if err := rows.Scan(&v.version, &v.name, &v.applied); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func TestMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kmsd.db")
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	first := versions(t, path)
	if len(first) == 0 || first[0].version != 1 || first[0].name != "0001_init.sql" {
		t.Fatalf("schema_version after the first open: %+v", first)
	}
	for i, v := range first {
		if v.version != i+1 {
			t.Errorf("versions not contiguous: %+v", first)
		}
	}
	var tables int
	openRaw(t, path).QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type = 'table'
AND name IN ('activation', 'clients', 'client_names', 'client_addrs')`).Scan(&tables)
	if tables != 4 {
		t.Errorf("%d of the 4 tables exist", tables)
	}
	var mode string
	openRaw(t, path).QueryRow(`PRAGMA journal_mode`).Scan(&mode)
	if mode != "wal" {
		t.Errorf("journal_mode %q, want wal", mode)
	}

	// Re-opening applies nothing.
	s, err = sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if again := versions(t, path); len(again) != len(first) || again[len(again)-1] != first[len(first)-1] {
		t.Errorf("re-open changed schema_version: %+v, was %+v", again, first)
	}
}

func TestSchemaTooNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kmsd.db")
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := openRaw(t, path).Exec(`INSERT INTO schema_version (version, name, applied) VALUES (99, '0099_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	_, err = sqlite.Open(path)
	if !errors.Is(err, sqlite.ErrSchemaTooNew) || !strings.Contains(err.Error(), "version 99") {
		t.Fatalf("Open = %v, want ErrSchemaTooNew naming version 99", err)
	}
	t.Log(err)
}

// TestBusyReader checks that a reader in another connection does not make
// writes fail (WAL) and sees committed data.
func TestBusyReader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kmsd.db")
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	raw := openRaw(t, path)
	tx, err := raw.Begin()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	tx.QueryRow(`SELECT count(*) FROM activation`).Scan(&n) // holds a read snapshot
	if err := s.Add(ctx, []store.Activation{storetest.Rec(1, 0)}); err != nil {
		t.Fatalf("Add while another connection reads: %v", err)
	}
	tx.Rollback()
	other, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if got, _ := other.Activations(ctx, store.ActivationFilter{}); len(got) != 1 {
		t.Errorf("second store sees %d records", len(got))
	}
}
