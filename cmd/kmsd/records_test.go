package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kmsd/internal/kms"
	"kmsd/internal/products"
	"kmsd/internal/server"
	"kmsd/internal/store"
	"kmsd/internal/store/sqlite"
	"kmsd/internal/store/storetest"
	"kmsd/internal/wire"
)

type recZeroRand struct{}

func (recZeroRand) Read(p []byte) (int, error) { clear(p); return len(p), nil }

var recordNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func recHost(t *products.Table, policy kms.Policy) *kms.Host {
	h := &kms.Host{Table: t, Policy: policy, Env: kms.Env{Rand: recZeroRand{}, Now: func() time.Time { return recordNow }}}
	for _, c := range t.CSVLKs {
		h.Slots = append(h.Slots, kms.NewSlot(c.BuiltinEPID, kms.DefaultHWID))
	}
	return h
}

// recProduct returns the first protocol 6 product whose KMS item is
// retail (or not).
func recProduct(t *testing.T, tab *products.Table, retail bool) *products.Product {
	for i := range tab.Products {
		if k := &tab.KMSItems[tab.Products[i].KMS]; k.Protocol == 6 && k.Retail == retail {
			return &tab.Products[i]
		}
	}
	t.Fatal("no such product")
	return nil
}

// recDecide runs a V6 request for p through a host and returns the event.
func recDecide(t *testing.T, h *kms.Host, p *products.Product) *server.Event {
	tab := h.Table
	k := &tab.KMSItems[p.KMS]
	b := kms.BaseRequest{Version: kms.Version{Major: 6}, VMInfo: 1, LicenseStatus: 2, BindingExpiration: 43200,
		AppID: tab.Apps[k.App].ID, ActID: p.SKU, KMSID: k.ID, NPolicy: k.NPolicy,
		CMID:       wire.MustGUID("11111111-2222-4333-8444-555555555555"),
		ClientTime: wire.FileTime(recordNow.Add(-90 * time.Second))}
	b.SetWorkstationName("pc-01.example.org")
	payload := kms.EncodeRequest(nil, &b, [16]byte{1, 2, 3})
	d := new(kms.Decision)
	h.Handle(nil, payload, d)
	return &server.Event{Time: recordNow, Peer: netip.MustParseAddrPort("10.0.0.5:49999"), Decision: d}
}

func TestActivationFromEvent(t *testing.T) {
	tab := products.Builtin()
	policy := kms.Policy{ActivationInterval: 120, RenewalInterval: 10080}
	p := recProduct(t, tab, false)
	k := &tab.KMSItems[p.KMS]
	e := recDecide(t, recHost(tab, policy), p)
	if e.Decision.HResult != 0 {
		t.Fatalf("refused: %s", e.Decision.Reason)
	}
	got := activationFromEvent(e, tab, "kms1", policy)
	want := store.Activation{
		Received: recordNow, Host: "kms1", Peer: "10.0.0.5:49999", Protocol: "6.0", NPolicy: k.NPolicy,
		Workstation: "pc-01.example.org", CMID: "11111111-2222-4333-8444-555555555555",
		PreviousCMID: "00000000-0000-0000-0000-000000000000", ClientTime: recordNow.Add(-90 * time.Second),
		VM: true, LicenseStatus: 2, BindingExpiration: 43200, AppID: tab.Apps[k.App].ID.String(),
		SKUID: p.SKU.String(), KMSID: k.ID.String(), Product: p.Name, KMSName: k.Name,
		Count: e.Decision.Count, EPID: tab.CSVLKs[k.CSVLK].BuiltinEPID, ActivationInterval: 120, RenewalInterval: 10080,
	}
	if got != want {
		t.Errorf("activation:\n got %+v\nwant %+v", got, want)
	}
	if got.Count == 0 {
		t.Error("count 0 for a success")
	}
}

func TestActivationFromRefusal(t *testing.T) {
	tab := products.Builtin()
	policy := kms.Policy{Whitelist: kms.WhitelistNoRetail, ActivationInterval: 120, RenewalInterval: 10080}
	p := recProduct(t, tab, true)
	e := recDecide(t, recHost(tab, policy), p)
	got := activationFromEvent(e, tab, "kms1", policy)
	if got.HResult != kms.HResultKMSIDMismatch || got.Count != 0 || got.EPID != "" || got.RenewalInterval != 0 {
		t.Errorf("refusal recorded as %+v", got)
	}
	if got.CMID == "" || got.Product != p.Name || got.Workstation != "pc-01.example.org" {
		t.Errorf("refusal lost the request fields: %+v", got)
	}
}

func TestActivationFromUndecrypted(t *testing.T) {
	tab := products.Builtin()
	d := new(kms.Decision)
	recHost(tab, kms.Policy{}).Handle(nil, []byte{0, 0, 6, 0, 1, 2}, d)
	e := &server.Event{Time: recordNow, Peer: netip.MustParseAddrPort("[2001:db8::1]:1688"), Decision: d}
	got := activationFromEvent(e, tab, "kms1", kms.Policy{RenewalInterval: 10080})
	want := store.Activation{Received: recordNow, Host: "kms1", Peer: "[2001:db8::1]:1688", Protocol: "6.0",
		HResult: kms.HResultInvalidData}
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestStoreRecorder(t *testing.T) {
	tab := products.Builtin()
	s, _ := openStore("memory")
	q := store.NewQueue(s, 10, 1, time.Millisecond, nil)
	policy := kms.Policy{RenewalInterval: 10080}
	var r server.Recorder = newStoreRecorder(q, tab, "kms1", func() kms.Policy { return policy })
	r.Record(recDecide(t, recHost(tab, policy), recProduct(t, tab, false)))
	for deadline := time.Now().Add(5 * time.Second); q.Committed() == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	got, err := s.Activations(context.Background(), store.ActivationFilter{})
	if err != nil || len(got) != 1 || got[0].Host != "kms1" || got[0].RenewalInterval != 10080 {
		t.Errorf("recorded %+v, %v", got, err)
	}
	q.Close(context.Background())
}

// recFillDB writes a small history into a new sqlite file: three Windows
// clients (CMID 1 cloned as two names, CMID 3 refused once and a VM),
// one Office client seen 10 days ago, one undecodable request.
func recFillDB(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "kmsd.db")
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := storetest.Base // = recordNow
	r1b := storetest.Rec(1, -2*time.Hour)
	r1b.Workstation = "clone-of-1"
	r3 := storetest.Refused(storetest.Rec(3, -3*time.Hour), kms.HResultKMSIDMismatch)
	office := storetest.Rec(4, -10*24*time.Hour)
	office.KMSID, office.Product, office.KMSName, office.NPolicy = storetest.KMSOffice, "Office Professional Plus 2016", "Office 2016", 5
	recs := []store.Activation{storetest.Rec(1, -time.Hour), r1b, storetest.Rec(2, -30*time.Minute), r3,
		storetest.Rec(3, -20*time.Minute), office, storetest.Undecrypted(-5 * time.Minute)}
	if err := s.Add(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	if !b.Equal(recordNow) {
		t.Fatal("storetest.Base moved")
	}
	return path
}

func recRun(t *testing.T, f func(w, errw *bytes.Buffer) int) (string, string, int) {
	t.Helper()
	var w, errw bytes.Buffer
	code := f(&w, &errw)
	return w.String(), errw.String(), code
}

func recClientsJSON(t *testing.T, args ...string) []map[string]any {
	t.Helper()
	out, errs, code := recRun(t, func(w, e *bytes.Buffer) int { return clientsTo(w, e, append(args, "--json"), recordNow) })
	if code != 0 {
		t.Fatalf("clients %v: exit %d: %s", args, code, errs)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("clients %v: %v\n%s", args, err, out)
	}
	return rows
}

func TestClientsCommand(t *testing.T) {
	db := recFillDB(t)
	out, errs, code := recRun(t, func(w, e *bytes.Buffer) int { return clientsTo(w, e, []string{"--db", db}, recordNow) })
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"CMID", "WORKSTATION", "RENEWAL DUE", storetest.CMID(1), "yes (2 names)", "Windows 11 Pro",
		"OOB grace", "2026-03-08 11:00", "4 client(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	rows := recClientsJSON(t, "--db", "sqlite:"+db)
	if len(rows) != 4 {
		t.Fatalf("%d JSON rows, want 4", len(rows))
	}
	first := rows[0] // CMID 3, seen last
	if first["cmid"] != storetest.CMID(3) || first["vm"] != true || first["license_status_name"] != "OOB grace" ||
		first["activations"] != 2.0 || first["last_hresult"] != "0x00000000" || first["clock_skew_seconds"] != -90.0 {
		t.Errorf("first row: %v", first)
	}
	for _, r := range rows {
		if (r["cmid"] == storetest.CMID(1)) != (r["cloned"] == true) {
			t.Errorf("cloned flag wrong: %v", r)
		}
	}
	cases := []struct {
		args []string
		want int
	}{
		{[]string{"--search", "CLONE-OF"}, 1},
		{[]string{"--product", storetest.KMSOffice}, 1},
		{[]string{"--product", strings.ToUpper(storetest.KMSWindows)}, 3},
		{[]string{"--product", "office 2016"}, 1},
		{[]string{"--product", "windows", "--limit", "2"}, 2},
		{[]string{"--since", "1d"}, 3},
		{[]string{"--since", "25m"}, 1},
		{[]string{"--limit", "1"}, 1},
		{[]string{"--search", "nothing-like-this"}, 0},
	}
	for _, c := range cases {
		if got := recClientsJSON(t, append([]string{"--db", db}, c.args...)...); len(got) != c.want {
			t.Errorf("clients %v: %d rows, want %d", c.args, len(got), c.want)
		}
	}
	if out, _, _ := recRun(t, func(w, e *bytes.Buffer) int {
		return clientsTo(w, e, []string{"--db", db, "--json", "--search", "none"}, recordNow)
	}); strings.TrimSpace(out) != "[]" {
		t.Errorf("empty answer %q, want []", out)
	}
}

func TestClientsErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.db")
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--db", missing}, 1, "no activation database"},
		{[]string{"--db", "postgres://127.0.0.1:1/kmsd"}, 1, "postgres: connecting to 127.0.0.1:1: connection refused"},
		{[]string{"--since", "soon"}, 2, "invalid duration"},
		{[]string{"--order", "size"}, 2, "unknown client order"},
		{[]string{"--bogus"}, 2, "flag provided but not defined"},
		{[]string{"extra"}, 2, "unexpected argument"},
	}
	for _, c := range cases {
		_, errs, code := recRun(t, func(w, e *bytes.Buffer) int { return clientsTo(w, e, c.args, recordNow) })
		if code != c.code || !strings.Contains(errs, c.msg) {
			t.Errorf("clients %v: exit %d, %q; want %d and %q", c.args, code, errs, c.code, c.msg)
		}
	}
	if _, errs, code := recRun(t, func(w, e *bytes.Buffer) int { return statsTo(w, e, []string{"--db", missing}, recordNow) }); code != 1 || !strings.Contains(errs, missing) {
		t.Errorf("stats on a missing database: exit %d, %q", code, errs)
	}
	if _, _, code := recRun(t, func(w, e *bytes.Buffer) int { return clientsTo(w, e, []string{"--help"}, recordNow) }); code != 0 {
		t.Errorf("--help: exit %d", code)
	}
}

func TestStatsCommand(t *testing.T) {
	db := recFillDB(t)
	out, errs, code := recRun(t, func(w, e *bytes.Buffer) int { return statsTo(w, e, []string{"--db", db}, recordNow) })
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"Windows Vista", "3 of 25 needed (22 short)", "Office 2016 (Volume)",
		"1 of 5 needed (4 short)", "0xC004F042 ×1", "could not be decoded", "0x8007000D ×1", "2026-03-01 11:40",
		"4 (1 day), 4 (7 days), 4 (30 days)", "7 request(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("stats lack %q:\n%s", want, out)
		}
	}
	out, errs, code = recRun(t, func(w, e *bytes.Buffer) int { return statsTo(w, e, []string{"--db", db, "--json"}, recordNow) })
	if code != 0 {
		t.Fatalf("--json: exit %d: %s", code, errs)
	}
	var r statsReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if r.WindowDays != 30 || r.Requests != 7 || len(r.KMS) != 3 {
		t.Fatalf("report %+v", r)
	}
	win, office, undecoded := r.KMS[0], r.KMS[1], r.KMS[2]
	if win.KMSID != storetest.KMSWindows || win.ActiveClients != 3 || win.Threshold != 25 || win.ThresholdMet ||
		win.Activations1d != 4 || win.Refusals["0xC004F042"] != 1 || !win.LastActivity.Equal(recordNow.Add(-20*time.Minute)) {
		t.Errorf("windows: %+v", win)
	}
	if office.ActiveClients != 1 || office.Threshold != 5 || office.Activations1d != 0 || office.Activations7d != 0 ||
		office.Activations30d != 1 {
		t.Errorf("office: %+v", office)
	}
	if undecoded.KMSID != "" || undecoded.Refusals["0x8007000D"] != 1 {
		t.Errorf("undecoded: %+v", undecoded)
	}
}

func TestDefaultDBPath(t *testing.T) {
	home := func() (string, error) { return "/home/u", nil }
	cases := []struct {
		env      map[string]string
		writable bool
		want     string
	}{
		{map[string]string{"STATE_DIRECTORY": "/var/lib/private/kmsd:/other"}, false, "/var/lib/private/kmsd/kmsd.db"},
		{nil, true, "/var/lib/kmsd/kmsd.db"},
		{map[string]string{"XDG_STATE_HOME": "/x/state"}, false, "/x/state/kmsd/kmsd.db"},
		{map[string]string{"XDG_STATE_HOME": "relative"}, false, "/home/u/.local/state/kmsd/kmsd.db"},
		{nil, false, "/home/u/.local/state/kmsd/kmsd.db"},
	}
	for _, c := range cases {
		got := defaultDBPathFrom(func(k string) string { return c.env[k] }, func(string) bool { return c.writable }, home)
		if got != filepath.FromSlash(c.want) {
			t.Errorf("%v, writable %v: %s, want %s", c.env, c.writable, got, c.want)
		}
	}
}

func TestOpenStore(t *testing.T) {
	for _, dsn := range []string{"memory", "sqlite::memory:", filepath.Join(t.TempDir(), "sub", "dir", "k.db")} {
		s, err := openStore(dsn)
		if err != nil {
			t.Errorf("%s: %v", dsn, err)
			continue
		}
		if err := s.Add(context.Background(), []store.Activation{storetest.Rec(1, 0)}); err != nil {
			t.Errorf("%s: %v", dsn, err)
		}
		s.Close()
	}
}
