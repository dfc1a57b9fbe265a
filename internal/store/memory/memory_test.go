package memory_test

import (
	"context"
	"testing"
	"time"

	"kmsd/internal/store"
	"kmsd/internal/store/memory"
	"kmsd/internal/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := memory.New(0)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestBounded(t *testing.T) {
	s := memory.New(10)
	defer s.Close()
	ctx := context.Background()
	for i := range 25 {
		if err := s.Add(ctx, []store.Activation{storetest.Rec(i, time.Duration(i)*time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := s.Activations(ctx, store.ActivationFilter{})
	if len(got) != 10 || got[0].CMID != storetest.CMID(24) || got[9].CMID != storetest.CMID(15) {
		t.Errorf("kept %d records, newest %s, oldest %s", len(got), got[0].CMID, got[len(got)-1].CMID)
	}
	cs, _ := s.Clients(ctx, store.ClientFilter{})
	if len(cs) != 10 || cs[0].CMID != storetest.CMID(24) || cs[9].CMID != storetest.CMID(15) {
		t.Errorf("kept %d clients", len(cs))
	}
	// Updating an old client keeps it when a new one arrives.
	s.Add(ctx, []store.Activation{storetest.Rec(15, time.Minute), storetest.Rec(99, time.Minute)})
	cs, _ = s.Clients(ctx, store.ClientFilter{Search: storetest.CMID(15)})
	if len(cs) != 1 {
		t.Error("recently updated client evicted")
	}
	if n, _ := s.Prune(ctx, storetest.Base.Add(20*time.Second)); n != 3 {
		t.Errorf("Prune removed %d, want 3", n)
	}
}
