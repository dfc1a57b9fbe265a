package web_test

import (
	"context"
	"slices"
	"sync"
	"time"

	"kmsd/internal/store"
)

// fakeStore is a store.Store over a slice for the handler tests. It keeps
// the inventory with the store package's own rules (Client.Apply, the
// filters' Match, SortClients), and TestFakeStoreContract runs it through
// the contract suite of the real backends.
type fakeStore struct {
	mu      sync.Mutex
	recs    []store.Activation
	clients map[string]*store.Client
	nextID  int64
	err     error // returned by every method when set
	closed  bool
}

var _ store.Store = (*fakeStore)(nil)

func newFakeStore() *fakeStore { return &fakeStore{clients: map[string]*store.Client{}} }

func (f *fakeStore) fail() error {
	if f.closed {
		return store.ErrClosed
	}
	return f.err
}

func (f *fakeStore) Add(_ context.Context, recs []store.Activation) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail(); err != nil {
		return err
	}
	for _, r := range recs {
		f.nextID++
		r.ID = f.nextID
		r.Received, r.ClientTime = r.Received.UTC(), r.ClientTime.UTC()
		f.recs = append(f.recs, r)
		if r.CMID == "" {
			continue
		}
		c := f.clients[r.CMID]
		if c == nil {
			c = &store.Client{}
			f.clients[r.CMID] = c
		}
		c.Apply(&r)
	}
	return nil
}

func (f *fakeStore) Activations(_ context.Context, flt store.ActivationFilter) ([]store.Activation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail(); err != nil {
		return nil, err
	}
	var out []store.Activation
	for i := range f.recs {
		if flt.Match(&f.recs[i]) {
			out = append(out, f.recs[i])
		}
	}
	store.SortActivations(out)
	return slices.Clone(store.Page(out, flt.Offset, flt.Limit)), nil
}

func (f *fakeStore) Clients(_ context.Context, flt store.ClientFilter) ([]store.Client, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail(); err != nil {
		return nil, err
	}
	var out []store.Client
	for _, c := range f.clients {
		if flt.Match(c) {
			cc := *c
			cc.Names, cc.Addresses = slices.Clone(c.Names), slices.Clone(c.Addresses)
			out = append(out, cc)
		}
	}
	if err := store.SortClients(out, flt.OrderBy); err != nil {
		return nil, err
	}
	return store.Page(out, flt.Offset, flt.Limit), nil
}

// ActiveClients counts the distinct CMIDs activated (HResult 0) since a
// time, as the contract requires.
func (f *fakeStore) ActiveClients(_ context.Context, kmsID string, since time.Time) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail(); err != nil {
		return 0, err
	}
	seen := map[string]bool{}
	for _, r := range f.recs {
		if r.HResult == 0 && r.KMSID == kmsID && r.CMID != "" && !r.Received.Before(since) {
			seen[r.CMID] = true
		}
	}
	return len(seen), nil
}

func (f *fakeStore) Prune(_ context.Context, before time.Time) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail(); err != nil {
		return 0, err
	}
	n := len(f.recs)
	f.recs = slices.DeleteFunc(f.recs, func(r store.Activation) bool { return r.Received.Before(before) })
	for k, c := range f.clients {
		if c.LastSeen.Before(before) {
			delete(f.clients, k)
		}
	}
	return int64(n - len(f.recs)), nil
}

func (f *fakeStore) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}
