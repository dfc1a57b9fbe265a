//go:build !(mips || mipsle || mips64 || mips64le || illumos || nosqlite)

// Package sqlite is the embedded store.Store: a SQLite database file
// through modernc.org/sqlite (pure Go, no cgo). It is excluded, with the
// nosqlite tag forced, where modernc does not build (mips*, illumos); there
// Open returns ErrUnavailable.
//
// The database runs in WAL mode with synchronous=NORMAL: a committed batch
// survives the process being killed (kill -9); a power cut may lose the
// last batches. One connection writes (transactions begin IMMEDIATE, so
// writers never deadlock on a lock upgrade), a few others read, and every
// connection waits up to BusyTimeout for a lock held by another process,
// such as `kmsd clients` reading while the host writes. The schema comes
// from the embedded migrations/*.sql files (see migrate.go).
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"kmsd/internal/store"
)

// BusyTimeout is how long a statement waits for a lock held by another
// connection or process before failing with SQLITE_BUSY.
const BusyTimeout = 5 * time.Second

// readers is the size of the reading connection pool.
const readers = 4

// Store is a store.Store in one SQLite database file.
type Store struct {
	mu     sync.RWMutex // held for reading by every call, for writing by Close
	closed bool
	w      *sql.DB // one connection: every write goes through it
	r      *sql.DB // readers (the same as w for an in-memory database)
	stmts  writeStmts
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database at path, or a private
// in-memory database for Memory, and brings its schema up to date. A
// database written by a newer kmsd (a schema version this binary does not
// know) fails with an error wrapping ErrSchemaTooNew. A new file is
// created readable by its owner and group only: it holds machine names and
// addresses.
func Open(path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	s := &Store{}
	var err error
	if path == Memory {
		s.w, err = sql.Open("sqlite", dsn("file::memory:", false))
		if err == nil {
			s.w.SetMaxOpenConns(1) // each connection would be its own database
			s.r = s.w
		}
	} else {
		err = s.openFile(path)
	}
	if err == nil {
		err = s.init()
	}
	if err != nil {
		s.closeDBs()
		return nil, err
	}
	return s, nil
}

func (s *Store) openFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	f.Close()
	uri := "file:" + uriPath(path)
	if s.w, err = sql.Open("sqlite", dsn(uri, false)); err != nil {
		return err
	}
	s.w.SetMaxOpenConns(1)
	if s.r, err = sql.Open("sqlite", dsn(uri, true)); err != nil {
		return err
	}
	s.r.SetMaxOpenConns(readers)
	return nil
}

func (s *Store) init() error {
	ctx := context.Background()
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	if _, err := migrate(ctx, s.w, migrationFS); err != nil {
		return err
	}
	return s.stmts.prepare(ctx, s.w)
}

// dsn adds the connection settings to a file: URI.
func dsn(uri string, readOnly bool) string {
	q := fmt.Sprintf("?_pragma=busy_timeout(%d)", BusyTimeout.Milliseconds())
	if readOnly {
		return uri + q + "&_pragma=query_only(1)"
	}
	return uri + q + "&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=temp_store(MEMORY)&_txlock=immediate"
}

// uriPath escapes the characters that end or escape a URI path.
func uriPath(path string) string {
	path = filepath.ToSlash(path)
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
}

// enter guards a call against Close; the caller must call s.mu.RUnlock
// when it returns nil.
func (s *Store) enter() error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return store.ErrClosed
	}
	return nil
}

// Close waits for the calls in progress and closes the database; later
// calls return store.ErrClosed. Closing twice is not an error.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.stmts.close()
	return s.closeDBs()
}

func (s *Store) closeDBs() error {
	var errs []error
	if s.r != nil && s.r != s.w {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close()) // the last connection checkpoints the WAL
	}
	return errors.Join(errs...)
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

// nullMicros stores a zero time as NULL.
func nullMicros(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

func fromNullMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMicros(v.Int64)
}
