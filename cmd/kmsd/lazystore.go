package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"kmsd/internal/store"
)

// errNotConnected is returned by a lazyStore until its database is open.
var errNotConnected = errors.New("activation database not connected yet")

// lazyStore opens its database in the background, retrying with backoff,
// so the host starts and answers while a PostgreSQL server is unreachable;
// the queue keeps records until Add succeeds.
type lazyStore struct {
	mu     sync.RWMutex
	s      store.Store
	closed bool
	cancel context.CancelFunc
}

func newLazyStore(open func(ctx context.Context) (store.Store, error), what string, logger *slog.Logger) *lazyStore {
	ctx, cancel := context.WithCancel(context.Background())
	l := &lazyStore{cancel: cancel}
	go func() {
		delay := time.Second
		for {
			s, err := open(ctx)
			if err == nil {
				l.mu.Lock()
				if l.closed {
					l.mu.Unlock()
					s.Close()
					return
				}
				l.s = s
				l.mu.Unlock()
				logger.Info("activation database connected", "db", what)
				return
			}
			logger.Warn("cannot open the activation database; retrying, records wait in memory", "db", what, "err", err, "in", delay)
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			delay = min(2*delay, time.Minute)
		}
	}()
	return l
}

func (l *lazyStore) get() (store.Store, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, store.ErrClosed
	}
	if l.s == nil {
		return nil, errNotConnected
	}
	return l.s, nil
}

func (l *lazyStore) Add(ctx context.Context, recs []store.Activation) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.Add(ctx, recs)
}

func (l *lazyStore) Activations(ctx context.Context, f store.ActivationFilter) ([]store.Activation, error) {
	s, err := l.get()
	if err != nil {
		return nil, err
	}
	return s.Activations(ctx, f)
}

func (l *lazyStore) Clients(ctx context.Context, f store.ClientFilter) ([]store.Client, error) {
	s, err := l.get()
	if err != nil {
		return nil, err
	}
	return s.Clients(ctx, f)
}

func (l *lazyStore) ActiveClients(ctx context.Context, kmsID string, since time.Time) (int, error) {
	s, err := l.get()
	if err != nil {
		return 0, err
	}
	return s.ActiveClients(ctx, kmsID, since)
}

func (l *lazyStore) Prune(ctx context.Context, before time.Time) (int64, error) {
	s, err := l.get()
	if err != nil {
		return 0, err
	}
	return s.Prune(ctx, before)
}

func (l *lazyStore) Close() error {
	l.cancel()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.s != nil {
		return l.s.Close()
	}
	return nil
}
