package store_test

import (
	"context"
	"testing"
	"time"

	"kmsd/internal/store"
	"kmsd/internal/store/memory"
	"kmsd/internal/store/storetest"
)

func TestSummarize(t *testing.T) {
	s := memory.New(0)
	defer s.Close()
	until := storetest.Base.Add(time.Hour)
	old := storetest.Rec(9, -40*24*time.Hour) // outside the window, still in the inventory
	old.KMSID = storetest.KMSOffice
	recs := []store.Activation{
		storetest.Rec(1, 0), storetest.Rec(1, -2*24*time.Hour), storetest.Rec(2, -20*24*time.Hour),
		storetest.Refused(storetest.Rec(3, 0), 0xC004F042), storetest.Undecrypted(0), old,
	}
	if err := s.Add(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	sum, err := store.Summarize(context.Background(), s, until, 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Requests != 5 || len(sum.KMS) != 3 {
		t.Fatalf("summary %+v", sum)
	}
	undecoded, win, office := sum.KMS[0], sum.KMS[1], sum.KMS[2] // sorted by KMS ID
	if undecoded.KMSID != "" || undecoded.Refusals[0x8007000D] != 1 {
		t.Errorf("undecoded %+v", undecoded)
	}
	if win.KMSID != storetest.KMSWindows || win.ActiveClients != 2 || win.Activations1d != 1 || win.Activations7d != 2 ||
		win.ActivationsWindow != 3 || win.Refusals[0xC004F042] != 1 || win.MaxNPolicy != 25 ||
		!win.LastActivity.Equal(storetest.Base) || win.KMSName != "Windows 10/11" {
		t.Errorf("windows %+v", win)
	}
	if office.ActiveClients != 0 || office.ActivationsWindow != 0 || !office.LastActivity.Equal(old.Received) {
		t.Errorf("office %+v", office)
	}
}
