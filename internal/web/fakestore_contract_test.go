package web_test

import (
	"testing"

	"kmsd/internal/store"
	"kmsd/internal/store/storetest"
)

// TestFakeStoreContract holds the handler tests' fake to the contract every
// real backend passes, so the numbers the tests expect are the real ones.
func TestFakeStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := newFakeStore()
		t.Cleanup(func() { s.Close() })
		return s
	})
}
