//go:build mips || mipsle || mips64 || mips64le || illumos || nosqlite

// Package sqlite is the embedded store.Store. This build has none: modernc
// SQLite does not build for this platform (or the nosqlite tag was given),
// and Open returns ErrUnavailable.
package sqlite

import (
	"context"
	"time"

	"kmsd/internal/store"
)

// Store is never returned in builds without SQLite.
type Store struct{}

var _ store.Store = (*Store)(nil)

// Open returns ErrUnavailable.
func Open(path string) (*Store, error) { return nil, ErrUnavailable }

// Add returns ErrUnavailable.
func (*Store) Add(context.Context, []store.Activation) error { return ErrUnavailable }

// Activations returns ErrUnavailable.
func (*Store) Activations(context.Context, store.ActivationFilter) ([]store.Activation, error) {
	return nil, ErrUnavailable
}

// Clients returns ErrUnavailable.
func (*Store) Clients(context.Context, store.ClientFilter) ([]store.Client, error) {
	return nil, ErrUnavailable
}

// ActiveClients returns ErrUnavailable.
func (*Store) ActiveClients(context.Context, string, time.Time) (int, error) {
	return 0, ErrUnavailable
}

// Prune returns ErrUnavailable.
func (*Store) Prune(context.Context, time.Time) (int64, error) { return 0, ErrUnavailable }

// Close does nothing.
func (*Store) Close() error { return nil }
