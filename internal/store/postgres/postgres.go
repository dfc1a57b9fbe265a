// Package postgres is the shared store.Store: a PostgreSQL database
// through pgx (pgxpool). Several kmsd hosts pointed at one database share
// one client inventory: a CMID seen on any host counts once, and every
// activation record carries the name of the host that answered.
//
// Add writes a batch in one transaction: the records, then the inventory
// rows of the batch's CMIDs, locked in CMID byte order (INSERT … ON
// CONFLICT DO UPDATE … RETURNING creates or locks each row), merged in Go
// with store.Client.Apply and written back. Two hosts updating one CMID at
// once are therefore serialized, and lock order is the same for every
// writer (Prune included), so they do not deadlock.
//
// The schema comes from the embedded migrations/*.sql files (see
// migrate.go); migrations run under a PostgreSQL advisory lock, so hosts
// starting at once against a new database apply each migration once.
//
// When the database goes away a call fails (after at most the connect
// timeout) and the next one connects again: store.Queue keeps the records
// and retries, so the host keeps answering and catches up when PostgreSQL
// returns.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"kmsd/internal/store"
)

// DefaultConnectTimeout bounds each connection attempt when the DSN has no
// connect_timeout.
const DefaultConnectTimeout = 10 * time.Second

// ErrSchemaTooNew is returned by Open for a database whose schema is newer
// than this binary knows: it was written by a newer kmsd.
var ErrSchemaTooNew = errors.New("postgres: database schema is newer than this kmsd supports")

// Store is a store.Store in a PostgreSQL database.
type Store struct {
	mu     sync.RWMutex // held for reading by every call, for writing by Close
	closed bool
	pool   *pgxpool.Pool
}

var _ store.Store = (*Store)(nil)

// Open connects to the database a DSN names (a postgres:// URL or
// key=value settings, as libpq takes them), brings its schema up to date
// and returns the store. Errors name what failed, e.g. "postgres:
// connecting to 127.0.0.1:5432: connection refused"; they never contain
// the password. A database written by a newer kmsd fails with an error
// wrapping ErrSchemaTooNew.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgconn masks the password in the text.
		return nil, fmt.Errorf("postgres: invalid DSN: %w", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	// Migrate on a connection of its own: closing it releases the
	// advisory lock whatever happened.
	conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig.Copy())
	if err != nil {
		return nil, connectError(cfg.ConnConfig, err)
	}
	_, err = migrate(ctx, conn, migrationFS)
	conn.Close(context.Background())
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return &Store{pool: pool}, nil
}

// connectError says where the connection went and why it failed, in one
// line.
func connectError(cfg *pgx.ConnConfig, err error) error {
	addr := cfg.Host
	if strings.HasPrefix(addr, "/") {
		addr = fmt.Sprintf("%s/.s.PGSQL.%d", strings.TrimSuffix(addr, "/"), cfg.Port)
	} else {
		addr = net.JoinHostPort(addr, strconv.Itoa(int(cfg.Port)))
	}
	return fmt.Errorf("postgres: connecting to %s: %w", addr, cause(err, cfg.ConnectTimeout))
}

// cause digs the reason out of pgconn's layered connection error.
func cause(err error, timeout time.Duration) error {
	var pgErr *pgconn.PgError
	var errno syscall.Errno
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &pgErr):
		return pgErr
	case errors.As(err, &dnsErr):
		return dnsErr
	case pgconn.Timeout(err), errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return timeoutError{timeout}
	case errors.As(err, &errno):
		return errno
	}
	return err
}

// timeoutError is a connection attempt that got no answer in time.
type timeoutError struct{ d time.Duration }

func (e timeoutError) Error() string { return fmt.Sprintf("no answer within %v", e.d) }
func (e timeoutError) Unwrap() error { return context.DeadlineExceeded }

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

// Close waits for the calls in progress and closes the connections; later
// calls return store.ErrClosed. Closing twice is not an error.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.pool.Close()
	return nil
}

// micro truncates t to what PostgreSQL keeps (microseconds), in UTC, so
// that the inventory merge in Go compares the times the database holds.
func micro(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.Truncate(time.Microsecond).UTC()
}

// nullTime is nil for the zero time (stored as NULL).
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func fromNull(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}
