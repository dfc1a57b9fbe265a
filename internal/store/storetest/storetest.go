// Package storetest is the contract suite every store.Store backend must
// pass: the memory, sqlite and postgres packages call Run from their
// tests (the pgxtest pattern).
//
// Besides the rules written down in package store (inventory.go,
// filter.go), the suite fixes these choices:
//
//   - Activations come back newest first (Received, then ID, descending)
//     with IDs assigned by the store; times come back in UTC with at least
//     microsecond precision (the suite uses milliseconds).
//   - ActiveClients counts only successful requests (HResult 0): a client
//     that was refused is not one the host serves, and a genuine KMS host
//     does not add refused clients to its count either.
//   - Prune returns the number of activation records removed.
//   - After Close every method returns store.ErrClosed; a second Close
//     returns nil.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"kmsd/internal/store"
)

// Run runs the contract suite; open must return a new empty store for each
// call and arrange for it to be closed at the end of the test.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("Activations", func(t *testing.T) { testActivations(t, open(t)) })
	t.Run("ActivationFilters", func(t *testing.T) { testActivationFilters(t, open(t)) })
	t.Run("Inventory", func(t *testing.T) { testInventory(t, open(t)) })
	t.Run("InventoryOrder", func(t *testing.T) { testInventoryOrder(t, open(t)) })
	t.Run("ClientFilters", func(t *testing.T) { testClientFilters(t, open(t)) })
	t.Run("NameCap", func(t *testing.T) { testNameCap(t, open(t)) })
	t.Run("BatchEqualsOneByOne", func(t *testing.T) { testBatchEqualsOneByOne(t, open(t), open(t)) })
	t.Run("ActiveClients", func(t *testing.T) { testActiveClients(t, open(t)) })
	t.Run("Prune", func(t *testing.T) { testPrune(t, open(t)) })
	t.Run("ConcurrentAdd", func(t *testing.T) { testConcurrentAdd(t, open(t)) })
	t.Run("Close", func(t *testing.T) { testClose(t, open(t)) })
}

// Base is the time the suite's records are built around.
var Base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// KMS IDs and the other GUID texts the suite uses.
const (
	KMSWindows = "212a64dc-43b1-4d3d-a30c-2fc69d2095c6"
	KMSOffice  = "85b5f61b-320b-4be3-814a-b76b2bfafc82"
	appWindows = "55c92734-d682-4d71-983e-d6ec3f16059f"
	skuPro     = "2de67392-b7a7-462a-b1ca-108dd189f588"
)

// CMID returns a deterministic CMID text for n.
func CMID(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }

// Rec returns a complete successful V6 record of CMID n received at Base
// plus offset, from host "ws<n>" at 10.0.0.<n>.
func Rec(n int, offset time.Duration) store.Activation {
	recv := Base.Add(offset)
	return store.Activation{
		Received: recv, Host: "kms1", Peer: fmt.Sprintf("10.0.0.%d:%d", n%250, 49152+n), Protocol: "6.0",
		NPolicy: 25, Workstation: fmt.Sprintf("ws%d", n), CMID: CMID(n),
		PreviousCMID: "00000000-0000-0000-0000-000000000000", ClientTime: recv.Add(-90 * time.Second),
		VM: n%2 == 1, LicenseStatus: 2, BindingExpiration: 43200, AppID: appWindows, SKUID: skuPro,
		KMSID: KMSWindows, Product: "Windows 11 Pro", KMSName: "Windows 10/11", Count: 50,
		EPID: "06401-00206-551-000000-03-1033-26100.0000-0602026", ActivationInterval: 120, RenewalInterval: 10080,
	}
}

// Refused turns r into a refusal with hresult.
func Refused(r store.Activation, hresult uint32) store.Activation {
	r.HResult, r.Count, r.EPID, r.ActivationInterval, r.RenewalInterval = hresult, 0, "", 0, 0
	return r
}

// Undecrypted returns a record of a request that could not be decoded: only
// time, peer, protocol and HRESULT.
func Undecrypted(offset time.Duration) store.Activation {
	return store.Activation{Received: Base.Add(offset), Host: "kms1", Peer: "192.0.2.1:5000", Protocol: "5.1",
		HResult: 0x8007000D}
}

func add(t *testing.T, s store.Store, recs ...store.Activation) {
	t.Helper()
	if err := s.Add(context.Background(), recs); err != nil {
		t.Fatalf("Add: %v", err)
	}
}

func query(t *testing.T, s store.Store, f store.ActivationFilter) []store.Activation {
	t.Helper()
	got, err := s.Activations(context.Background(), f)
	if err != nil {
		t.Fatalf("Activations(%+v): %v", f, err)
	}
	return got
}

func clients(t *testing.T, s store.Store, f store.ClientFilter) []store.Client {
	t.Helper()
	got, err := s.Clients(context.Background(), f)
	if err != nil {
		t.Fatalf("Clients(%+v): %v", f, err)
	}
	return got
}

// normTime makes equal instants compare equal with reflect.DeepEqual.
func normTime(tm time.Time) time.Time {
	if tm.IsZero() {
		return time.Time{}
	}
	return time.Unix(0, tm.UnixNano()).UTC()
}

func normAct(a store.Activation) store.Activation {
	a.ID = 0
	a.Received, a.ClientTime = normTime(a.Received), normTime(a.ClientTime)
	return a
}

func normClient(c store.Client) store.Client {
	c.FirstSeen, c.LastSeen, c.RenewalDue = normTime(c.FirstSeen), normTime(c.LastSeen), normTime(c.RenewalDue)
	if len(c.Names) == 0 {
		c.Names = nil
	}
	if len(c.Addresses) == 0 {
		c.Addresses = nil
	}
	return c
}

func testActivations(t *testing.T, s store.Store) {
	r1, r2 := Rec(1, 0), Refused(Rec(2, time.Minute), 0xC004F042)
	r2.VM, r2.KMSID, r2.Product, r2.KMSName = false, KMSOffice, "", ""
	r3 := Undecrypted(2 * time.Minute)
	add(t, s, r1, r2)
	add(t, s, r3)
	got := query(t, s, store.ActivationFilter{})
	if len(got) != 3 {
		t.Fatalf("got %d records, want 3", len(got))
	}
	ids := map[int64]bool{}
	for i, want := range []store.Activation{r3, r2, r1} {
		if got[i].ID == 0 || ids[got[i].ID] {
			t.Errorf("record %d: ID %d is zero or repeated", i, got[i].ID)
		}
		ids[got[i].ID] = true
		if got[i].Received.Location() != time.UTC {
			t.Errorf("record %d: Received in %v, want UTC", i, got[i].Received.Location())
		}
		if g, w := normAct(got[i]), normAct(want); !reflect.DeepEqual(g, w) {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

// testActivationFilters checks every filter field, ordering, limit and
// offset over ten records: CMIDs 0..9 one minute apart, odd ones refused,
// those from 5 on for Office.
func testActivationFilters(t *testing.T, s store.Store) {
	var recs []store.Activation
	for i := range 10 {
		r := Rec(i, time.Duration(i)*time.Minute)
		if i%2 == 1 {
			r = Refused(r, 0xC004F042)
		}
		if i >= 5 {
			r.KMSID = KMSOffice
		}
		recs = append(recs, r)
	}
	// Add in a shuffled order: the order of the answer must not depend on it.
	add(t, s, recs[3], recs[7], recs[0])
	add(t, s, recs[9], recs[1], recs[5], recs[2], recs[8], recs[4], recs[6])
	zero, refused := uint32(0), uint32(0xC004F042)
	cases := []struct {
		name string
		f    store.ActivationFilter
		want []int // CMID numbers, in answer order
	}{
		{"all", store.ActivationFilter{}, []int{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}},
		{"since inclusive", store.ActivationFilter{Since: Base.Add(7 * time.Minute)}, []int{9, 8, 7}},
		{"until exclusive", store.ActivationFilter{Until: Base.Add(2 * time.Minute)}, []int{1, 0}},
		{"window", store.ActivationFilter{Since: Base.Add(2 * time.Minute), Until: Base.Add(5 * time.Minute)}, []int{4, 3, 2}},
		{"cmid", store.ActivationFilter{CMID: CMID(4)}, []int{4}},
		{"kms id", store.ActivationFilter{KMSID: KMSOffice}, []int{9, 8, 7, 6, 5}},
		{"success", store.ActivationFilter{HResult: &zero}, []int{8, 6, 4, 2, 0}},
		{"refused", store.ActivationFilter{HResult: &refused}, []int{9, 7, 5, 3, 1}},
		{"kms id and refused", store.ActivationFilter{KMSID: KMSWindows, HResult: &refused}, []int{3, 1}},
		{"limit", store.ActivationFilter{Limit: 3}, []int{9, 8, 7}},
		{"offset", store.ActivationFilter{Offset: 8}, []int{1, 0}},
		{"limit and offset", store.ActivationFilter{Limit: 2, Offset: 3}, []int{6, 5}},
		{"offset past the end", store.ActivationFilter{Offset: 20}, nil},
		{"filtered page", store.ActivationFilter{KMSID: KMSWindows, Limit: 2, Offset: 1}, []int{3, 2}},
		{"nothing", store.ActivationFilter{CMID: CMID(99)}, nil},
	}
	for _, c := range cases {
		got := query(t, s, c.f)
		var nums []int
		for _, a := range got {
			var n int
			fmt.Sscanf(a.CMID[24:], "%d", &n)
			nums = append(nums, n)
		}
		if !reflect.DeepEqual(nums, c.want) {
			t.Errorf("%s: got CMIDs %v, want %v", c.name, nums, c.want)
		}
	}
	// Records received at the same time come back newest added first.
	same := Rec(20, 30*time.Minute)
	other := same
	other.Workstation = "second"
	add(t, s, same)
	add(t, s, other)
	got := query(t, s, store.ActivationFilter{Limit: 2})
	if len(got) != 2 || got[0].Workstation != "second" || got[1].Workstation != "ws20" {
		t.Errorf("ties: got %+v", got)
	}
}

// inventoryRecords is a CMID's history: success as "pc-a", a refusal as
// "PC-B" from another address, a late success as "pc-a", plus a record
// older than all of them that arrives last.
func inventoryRecords() []store.Activation {
	r1 := Rec(1, 0)
	r1.Workstation = "pc-a"
	r2 := Refused(Rec(1, time.Hour), 0xC004F06C)
	r2.Workstation, r2.Peer, r2.ClientTime = "PC-B", "10.0.0.2:50000", Base.Add(time.Hour+5*time.Hour)
	r3 := Rec(1, 2*time.Hour)
	r3.Workstation, r3.LicenseStatus, r3.RenewalInterval, r3.VM = "pc-a", 1, 60, false
	r3.ClientTime = Base.Add(2*time.Hour + 3*time.Second)
	r0 := Rec(1, -time.Hour)
	r0.Workstation, r0.Peer = "old-name", "[2001:db8::1]:1688"
	return []store.Activation{r1, r2, r3, r0}
}

func testInventory(t *testing.T, s store.Store) {
	recs := inventoryRecords()
	add(t, s, recs[0])
	add(t, s, recs[1], recs[2])
	add(t, s, recs[3], Undecrypted(3*time.Hour))
	got := clients(t, s, store.ClientFilter{})
	if len(got) != 1 {
		t.Fatalf("got %d clients, want 1 (records without CMID stay out): %+v", len(got), got)
	}
	r3 := recs[2]
	want := store.Client{
		CMID: CMID(1), FirstSeen: Base.Add(-time.Hour), LastSeen: Base.Add(2 * time.Hour),
		Workstation: "pc-a", Peer: "10.0.0.1", Product: r3.Product, SKUID: r3.SKUID, KMSID: r3.KMSID,
		LicenseStatus: 1, VM: false, LastHResult: 0,
		RenewalDue:  Base.Add(10080 * time.Minute), // r1's due time is later than r3's (60 min)
		ClockSkew:   3 * time.Second,
		Activations: 4,
		Names:       []string{"PC-B", "old-name", "pc-a"},
		Addresses:   []string{"10.0.0.1", "10.0.0.2", "2001:db8::1"},
	}
	if g, w := normClient(got[0]), normClient(want); !reflect.DeepEqual(g, w) {
		t.Errorf("inventory:\n got %+v\nwant %+v", g, w)
	}
	if !got[0].Cloned() {
		t.Error("Cloned() = false with three names")
	}
	// A refusal as the latest record updates the current state but not the
	// renewal time.
	r4 := Refused(Rec(1, 3*time.Hour), 0xC004F042)
	r4.Workstation = "pc-a"
	add(t, s, r4)
	c := clients(t, s, store.ClientFilter{})[0]
	if c.LastHResult != 0xC004F042 || !c.LastSeen.Equal(Base.Add(3*time.Hour)) || c.Activations != 5 ||
		!c.RenewalDue.Equal(want.RenewalDue) || c.ClockSkew != -90*time.Second {
		t.Errorf("after a refusal: %+v", c)
	}
	// A single-name client is not cloned.
	add(t, s, Rec(2, 0), Rec(2, time.Minute))
	c2 := clients(t, s, store.ClientFilter{Search: "ws2"})
	if len(c2) != 1 || c2[0].Cloned() || c2[0].Activations != 2 || len(c2[0].Names) != 1 {
		t.Errorf("single-name client: %+v", c2)
	}
}

func testNameCap(t *testing.T, s store.Store) {
	var recs []store.Activation
	for i := range store.MaxNamesPerClient + 5 {
		r := Rec(7, time.Duration(i)*time.Second)
		r.Workstation = fmt.Sprintf("n%02d", i)
		r.Peer = fmt.Sprintf("10.1.0.%d:1000", i)
		recs = append(recs, r)
	}
	add(t, s, recs[:10]...)
	add(t, s, recs[10:]...)
	c := clients(t, s, store.ClientFilter{})
	if len(c) != 1 {
		t.Fatalf("got %d clients", len(c))
	}
	if len(c[0].Names) != store.MaxNamesPerClient || len(c[0].Addresses) != store.MaxNamesPerClient {
		t.Errorf("got %d names and %d addresses, want %d each", len(c[0].Names), len(c[0].Addresses), store.MaxNamesPerClient)
	}
	if c[0].Names[0] != "n00" || c[0].Workstation != "n20" || c[0].Activations != len(recs) {
		t.Errorf("got %+v", c[0])
	}
}

// mixedRecords returns n records over a dozen CMIDs with names and
// addresses drawn from pools larger than MaxNamesPerClient, times out of
// order and tied, refusals, renewals of differing intervals, records
// without a CMID or a workstation: every case the inventory rules
// distinguish, in one pseudo-random but fixed sequence.
func mixedRecords(n int) []store.Activation {
	rng := rand.New(rand.NewPCG(1, 2))
	recs := make([]store.Activation, n)
	for i := range recs {
		r := Rec(rng.IntN(12), time.Duration(rng.IntN(40))*time.Minute)
		r.Workstation = fmt.Sprintf("pc-%d", rng.IntN(25))
		r.Peer = fmt.Sprintf("10.2.0.%d:%d", rng.IntN(25), 1024+i)
		r.RenewalInterval = uint32(60 * (1 + rng.IntN(200)))
		r.LicenseStatus = uint32(rng.IntN(6))
		r.VM = rng.IntN(2) == 0
		r.ClientTime = r.Received.Add(time.Duration(rng.IntN(600)-300) * time.Second)
		switch rng.IntN(10) {
		case 0:
			r = Refused(r, 0xC004F042)
		case 1:
			r.Workstation = ""
		case 2:
			r = Undecrypted(time.Duration(i) * time.Second)
		}
		recs[i] = r
	}
	return recs
}

// testBatchEqualsOneByOne checks that a batch is applied exactly as its
// records one at a time, in order: one store gets 300 mixed records one
// per Add, the other in batches of 1, 7, 64 and the rest.
func testBatchEqualsOneByOne(t *testing.T, one, batched store.Store) {
	recs := mixedRecords(300)
	for i := range recs {
		add(t, one, recs[i])
	}
	rest := recs
	for _, n := range []int{1, 7, 64, len(recs)} {
		n = min(n, len(rest))
		add(t, batched, rest[:n]...)
		rest = rest[n:]
	}
	f := store.ClientFilter{OrderBy: "first_seen", Limit: 1000}
	a, b := clients(t, one, f), clients(t, batched, f)
	byCMID := func(x, y store.Client) int { return strings.Compare(x.CMID, y.CMID) }
	slices.SortFunc(a, byCMID)
	slices.SortFunc(b, byCMID)
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("%d clients one by one, %d batched", len(a), len(b))
	}
	for i := range a {
		if g, w := normClient(b[i]), normClient(a[i]); !reflect.DeepEqual(g, w) {
			t.Errorf("client %d batched:\n got %+v\nwant %+v", i, g, w)
		}
	}
	ga := query(t, one, store.ActivationFilter{Limit: 1000})
	gb := query(t, batched, store.ActivationFilter{Limit: 1000})
	if len(ga) != len(recs) || len(gb) != len(recs) {
		t.Fatalf("%d and %d records stored, want %d", len(ga), len(gb), len(recs))
	}
	for i := range ga {
		if g, w := normAct(gb[i]), normAct(ga[i]); !reflect.DeepEqual(g, w) {
			t.Errorf("record %d batched:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

// clientFixture adds five clients: CMID n seen last at Base+n hours as
// "host-n", products differing, CMIDs 3 and 4 for Office, CMID 4 never
// activated.
func clientFixture(t *testing.T, s store.Store) {
	var recs []store.Activation
	for n := range 5 {
		r := Rec(n, time.Duration(n)*time.Hour)
		r.Workstation = fmt.Sprintf("host-%d", n)
		r.Product = []string{"Windows 11 Pro", "Windows 11 Enterprise", "Windows Server 2025", "Office LTSC 2024", "Office LTSC 2021"}[n]
		// Due times (minutes after Base): 10080, 5060, 220, 7180, none.
		r.RenewalInterval = []uint32{10080, 5000, 100, 7000, 60}[n]
		if n >= 3 {
			r.KMSID = KMSOffice
		}
		if n == 4 {
			r = Refused(r, 0xC004F042)
		}
		first := r
		first.Received = Base.Add(-time.Duration(n) * time.Hour)
		first.Workstation = fmt.Sprintf("first-%d", n)
		recs = append(recs, first, r)
	}
	add(t, s, recs...)
}

func cmids(cs []store.Client) []int {
	var out []int
	for _, c := range cs {
		var n int
		fmt.Sscanf(c.CMID[24:], "%d", &n)
		out = append(out, n)
	}
	return out
}

func testInventoryOrder(t *testing.T, s store.Store) {
	clientFixture(t, s)
	cases := []struct {
		order string
		want  []int
	}{
		{"", []int{4, 3, 2, 1, 0}},
		{store.OrderLastSeen, []int{4, 3, 2, 1, 0}},
		{store.OrderFirstSeen, []int{0, 1, 2, 3, 4}},
		{store.OrderWorkstation, []int{0, 1, 2, 3, 4}},
		{store.OrderProduct, []int{4, 3, 1, 0, 2}},
		{store.OrderRenewalDue, []int{2, 1, 3, 0, 4}},
	}
	for _, c := range cases {
		if got := cmids(clients(t, s, store.ClientFilter{OrderBy: c.order})); !reflect.DeepEqual(got, c.want) {
			t.Errorf("order %q: got %v, want %v", c.order, got, c.want)
		}
	}
	if _, err := s.Clients(context.Background(), store.ClientFilter{OrderBy: "cmid; drop table x"}); err == nil {
		t.Error("unknown order accepted")
	}
}

func testClientFilters(t *testing.T, s store.Store) {
	clientFixture(t, s)
	cases := []struct {
		name string
		f    store.ClientFilter
		want []int
	}{
		{"seen since", store.ClientFilter{SeenSince: Base.Add(3 * time.Hour)}, []int{4, 3}},
		{"kms id", store.ClientFilter{KMSID: KMSOffice}, []int{4, 3}},
		{"search workstation, any case", store.ClientFilter{Search: "HOST-2"}, []int{2}},
		{"search earlier name", store.ClientFilter{Search: "first-1"}, []int{1}},
		{"search product", store.ClientFilter{Search: "ltsc"}, []int{4, 3}},
		{"search cmid", store.ClientFilter{Search: CMID(3)[20:]}, []int{3}},
		{"search address", store.ClientFilter{Search: "10.0.0.2"}, []int{2}},
		{"search with LIKE wildcards", store.ClientFilter{Search: "host_%"}, nil},
		{"limit", store.ClientFilter{Limit: 2}, []int{4, 3}},
		{"offset", store.ClientFilter{Offset: 3}, []int{1, 0}},
		{"limit and offset", store.ClientFilter{Limit: 1, Offset: 1}, []int{3}},
		{"combined", store.ClientFilter{KMSID: KMSWindows, Search: "windows 11", Limit: 1}, []int{1}},
	}
	for _, c := range cases {
		if got := cmids(clients(t, s, c.f)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func testActiveClients(t *testing.T, s store.Store) {
	var recs []store.Activation
	for n := range 4 { // CMIDs 0..3 active twice in the window
		recs = append(recs, Rec(n, time.Duration(n)*time.Hour), Rec(n, time.Duration(n)*time.Hour+time.Minute))
	}
	recs = append(recs,
		Rec(10, -48*time.Hour),                  // before the window
		Refused(Rec(11, time.Hour), 0xC004F042), // refused only
		Undecrypted(time.Hour),                  // no CMID
		func() store.Activation { r := Rec(12, 0); r.KMSID = KMSOffice; return r }(), // other KMS ID
	)
	add(t, s, recs...)
	cases := []struct {
		kmsID string
		since time.Time
		want  int
	}{
		{KMSWindows, Base.Add(-24 * time.Hour), 4},
		{KMSWindows, Base.Add(2 * time.Hour), 2},             // inclusive
		{KMSWindows, Base.Add(3*time.Hour + time.Minute), 1}, // inclusive, to the minute
		{KMSWindows, Base.Add(-72 * time.Hour), 5},
		{KMSOffice, Base.Add(-24 * time.Hour), 1},
		{"unknown", time.Time{}, 0},
	}
	for _, c := range cases {
		got, err := s.ActiveClients(context.Background(), c.kmsID, c.since)
		if err != nil || got != c.want {
			t.Errorf("ActiveClients(%s, %v) = %d, %v; want %d", c.kmsID, c.since, got, err, c.want)
		}
	}
}

func testPrune(t *testing.T, s store.Store) {
	add(t, s, Rec(1, -10*time.Hour), Rec(1, time.Hour), Rec(2, -9*time.Hour), Undecrypted(-8*time.Hour),
		Rec(3, 0))
	n, err := s.Prune(context.Background(), Base)
	if err != nil || n != 3 {
		t.Fatalf("Prune = %d, %v; want 3", n, err)
	}
	if got := query(t, s, store.ActivationFilter{}); len(got) != 2 {
		t.Errorf("%d records left, want 2", len(got))
	}
	cs := clients(t, s, store.ClientFilter{})
	if got := cmids(cs); !reflect.DeepEqual(got, []int{1, 3}) {
		t.Errorf("clients left %v, want [1 3]", got)
	}
	// The inventory row outlives the records it was built from.
	if len(cs) > 0 && (!cs[0].FirstSeen.Equal(Base.Add(-10*time.Hour)) || cs[0].Activations != 2) {
		t.Errorf("client 1 after prune: %+v", cs[0])
	}
	if n, err := s.Prune(context.Background(), Base); err != nil || n != 0 {
		t.Errorf("second Prune = %d, %v; want 0", n, err)
	}
	// The pruned CMID starts afresh.
	add(t, s, Rec(2, 5*time.Hour))
	c := clients(t, s, store.ClientFilter{Search: "ws2"})
	if len(c) != 1 || c[0].Activations != 1 || !c[0].FirstSeen.Equal(Base.Add(5*time.Hour)) {
		t.Errorf("re-added client: %+v", c)
	}
}

func testConcurrentAdd(t *testing.T, s store.Store) {
	const workers, batches, size, cmids = 8, 25, 10, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for b := range batches {
				recs := make([]store.Activation, size)
				for i := range recs {
					k := (w*batches+b)*size + i
					recs[i] = Rec(k%cmids, time.Duration(k)*time.Millisecond)
				}
				if err := s.Add(context.Background(), recs); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	// Readers run at the same time as the writers.
	wg.Go(func() {
		for range 20 {
			if _, err := s.Clients(context.Background(), store.ClientFilter{Limit: 5}); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := workers * batches * size
	if got := query(t, s, store.ActivationFilter{}); len(got) != total {
		t.Errorf("%d records, want %d", len(got), total)
	}
	cs := clients(t, s, store.ClientFilter{})
	sum := 0
	for _, c := range cs {
		sum += c.Activations
	}
	if len(cs) != cmids || sum != total {
		t.Errorf("%d clients with %d activations, want %d and %d", len(cs), sum, cmids, total)
	}
	if n, err := s.ActiveClients(context.Background(), KMSWindows, Base); err != nil || n != cmids {
		t.Errorf("ActiveClients = %d, %v; want %d", n, err, cmids)
	}
}

func testClose(t *testing.T, s store.Store) {
	add(t, s, Rec(1, 0))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := context.Background()
	checks := map[string]error{
		"Add": s.Add(ctx, []store.Activation{Rec(2, 0)}),
	}
	_, checks["Activations"] = s.Activations(ctx, store.ActivationFilter{})
	_, checks["Clients"] = s.Clients(ctx, store.ClientFilter{})
	_, checks["ActiveClients"] = s.ActiveClients(ctx, KMSWindows, time.Time{})
	_, checks["Prune"] = s.Prune(ctx, Base)
	for name, err := range checks {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: %v, want store.ErrClosed", name, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
