// Package memory is a Store that keeps a bounded number of activation
// records and inventory rows in memory. It is what kmsd uses without a
// database, and the reference the other backends are compared with.
package memory

import (
	"container/list"
	"context"
	"slices"
	"sync"
	"time"

	"kmsd/internal/store"
)

// DefaultLimit is the number of records (and of clients) kept by default.
const DefaultLimit = 100_000

// Store is an in-memory store.Store. It keeps at most Limit activation
// records, dropping the oldest added, and at most Limit clients, dropping
// the one updated longest ago.
type Store struct {
	mu      sync.Mutex
	limit   int
	recs    []store.Activation // ring buffer once full; recs[head] is the oldest
	head    int
	nextID  int64
	clients map[string]*list.Element // values are *store.Client
	lru     list.List                // clients, least recently updated first
	closed  bool
}

var _ store.Store = (*Store)(nil)

// New returns an empty store keeping at most limit records; limit <= 0
// means DefaultLimit.
func New(limit int) *Store {
	if limit <= 0 {
		limit = DefaultLimit
	}
	return &Store{limit: limit, clients: make(map[string]*list.Element)}
}

// Add stores recs, assigning IDs, and updates the inventory.
func (s *Store) Add(ctx context.Context, recs []store.Activation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	for i := range recs {
		a := recs[i]
		s.nextID++
		a.ID = s.nextID
		a.Received, a.ClientTime = utc(a.Received), utc(a.ClientTime)
		s.push(a)
		if a.CMID != "" {
			s.client(a.CMID).Apply(&a)
		}
	}
	return nil
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

func (s *Store) push(a store.Activation) {
	if len(s.recs) < s.limit {
		s.recs = append(s.recs, a)
		return
	}
	s.recs[s.head] = a
	s.head = (s.head + 1) % len(s.recs)
}

// client returns the row for cmid, creating it (and evicting the least
// recently updated row when full), and marks it most recently updated.
func (s *Store) client(cmid string) *store.Client {
	if e, ok := s.clients[cmid]; ok {
		s.lru.MoveToBack(e)
		return e.Value.(*store.Client)
	}
	if len(s.clients) >= s.limit {
		old := s.lru.Front()
		delete(s.clients, old.Value.(*store.Client).CMID)
		s.lru.Remove(old)
	}
	c := &store.Client{}
	s.clients[cmid] = s.lru.PushBack(c)
	return c
}

// each calls f for every record, oldest added first.
func (s *Store) each(f func(a *store.Activation)) {
	for i := range s.recs {
		f(&s.recs[(s.head+i)%len(s.recs)])
	}
}

// Activations returns the matching records, newest first.
func (s *Store) Activations(ctx context.Context, f store.ActivationFilter) ([]store.Activation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	var out []store.Activation
	s.each(func(a *store.Activation) {
		if f.Match(a) {
			out = append(out, *a)
		}
	})
	store.SortActivations(out)
	return store.Page(out, f.Offset, f.Limit), nil
}

// Clients returns the matching inventory rows.
func (s *Store) Clients(ctx context.Context, f store.ClientFilter) ([]store.Client, error) {
	if err := store.CheckOrder(f.OrderBy); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	var out []store.Client
	for e := s.lru.Front(); e != nil; e = e.Next() {
		if c := e.Value.(*store.Client); f.Match(c) {
			cc := *c
			cc.Names, cc.Addresses = slices.Clone(c.Names), slices.Clone(c.Addresses)
			out = append(out, cc)
		}
	}
	if err := store.SortClients(out, f.OrderBy); err != nil {
		return nil, err
	}
	return store.Page(out, f.Offset, f.Limit), nil
}

// ActiveClients counts the distinct CMIDs activated (HResult 0) for kmsID
// at or after since, among the records still kept.
func (s *Store) ActiveClients(ctx context.Context, kmsID string, since time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, store.ErrClosed
	}
	seen := make(map[string]struct{})
	s.each(func(a *store.Activation) {
		if a.HResult == 0 && a.CMID != "" && a.KMSID == kmsID && !a.Received.Before(since) {
			seen[a.CMID] = struct{}{}
		}
	})
	return len(seen), nil
}

// Prune drops records received before before and clients last seen before
// it.
func (s *Store) Prune(ctx context.Context, before time.Time) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, store.ErrClosed
	}
	kept := make([]store.Activation, 0, len(s.recs))
	s.each(func(a *store.Activation) {
		if !a.Received.Before(before) {
			kept = append(kept, *a)
		}
	})
	n := int64(len(s.recs) - len(kept))
	s.recs, s.head = kept, 0
	for e := s.lru.Front(); e != nil; {
		next := e.Next()
		if c := e.Value.(*store.Client); c.LastSeen.Before(before) {
			delete(s.clients, c.CMID)
			s.lru.Remove(e)
		}
		e = next
	}
	return n, nil
}

// Close releases the records; later calls return store.ErrClosed. Closing
// twice is not an error.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.recs, s.clients = nil, nil
	s.lru.Init()
	return nil
}
