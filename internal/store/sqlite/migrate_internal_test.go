//go:build !(mips || mipsle || mips64 || mips64le || illumos || nosqlite)

package sqlite

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"testing/fstest"
)

func memDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", dsn("file::memory:", false))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func version(t *testing.T, db *sql.DB) int {
	t.Helper()
	var v int
	if err := db.QueryRow(`SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMigrateInOrder(t *testing.T) {
	ctx := context.Background()
	db := memDB(t)
	fsys := fstest.MapFS{
		"migrations/0001_a.sql": {Data: []byte("CREATE TABLE a (x INTEGER);\nINSERT INTO a VALUES (1);")},
		"migrations/0002_b.sql": {Data: []byte("ALTER TABLE a ADD COLUMN y INTEGER NOT NULL DEFAULT 2;")},
	}
	if found, err := migrate(ctx, db, fsys); err != nil || found != 0 {
		t.Fatalf("migrate = %d, %v", found, err)
	}
	if v := version(t, db); v != 2 {
		t.Fatalf("version %d, want 2", v)
	}
	var y int
	db.QueryRow(`SELECT y FROM a`).Scan(&y)
	if y != 2 {
		t.Error("second migration not applied after the first")
	}
	if found, err := migrate(ctx, db, fsys); err != nil || found != 2 {
		t.Fatalf("second migrate = %d, %v", found, err)
	}

	// A failing migration is rolled back whole and the version stays.
	fsys["migrations/0003_bad.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE c (x INTEGER);\nINSERT INTO nowhere VALUES (1);")}
	if _, err := migrate(ctx, db, fsys); err == nil || !strings.Contains(err.Error(), "0003_bad.sql") {
		t.Fatalf("bad migration: %v", err)
	}
	if v := version(t, db); v != 2 {
		t.Errorf("version %d after a failed migration, want 2", v)
	}
	var n int
	db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'c'`).Scan(&n)
	if n != 0 {
		t.Error("failed migration left table c behind")
	}
}

func TestLoadMigrationsRejectsGaps(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"gap":      {"migrations/0001_a.sql": {}, "migrations/0003_c.sql": {}},
		"bad name": {"migrations/first.sql": {}},
		"zero":     {"migrations/0000_a.sql": {}},
	} {
		if _, err := loadMigrations(fsys); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	ms, err := loadMigrations(migrationFS)
	if err != nil || len(ms) == 0 {
		t.Fatalf("embedded migrations: %v", err)
	}
}
