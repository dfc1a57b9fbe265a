package web_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"kmsd/internal/metrics"
	"kmsd/internal/products"
	"kmsd/internal/store"
	"kmsd/internal/web"
)

var testNow = time.Date(2026, 3, 10, 12, 30, 0, 0, time.UTC)

// record makes the activation record of product number n.
func record(n int, cmid, name string, at time.Time, hr uint32) store.Activation {
	t := products.Builtin()
	p := &t.Products[n-1]
	it := &t.KMSItems[p.KMS]
	r := store.Activation{Received: at, Host: "test", Peer: "192.0.2.10:50000", Protocol: fmt.Sprintf("%d.0", it.Protocol),
		HResult: hr, NPolicy: it.NPolicy, Workstation: name, CMID: cmid, ClientTime: at.Add(-3 * time.Second),
		LicenseStatus: 2, BindingExpiration: 43200, AppID: t.Apps[it.App].ID.String(), SKUID: p.SKU.String(),
		KMSID: it.ID.String(), Product: p.Name, KMSName: it.Name, ActivationInterval: 120, RenewalInterval: 10080}
	if hr == 0 {
		r.Count = 2 * it.NPolicy
		r.EPID = "06401-00206-271-298329-03-1033-9600.0000-0452025"
	}
	return r
}

const (
	win10ID  = "58e2134f-8e11-4d17-9cb2-91069c151148"
	srv25ID  = "907f1f65-adcd-4a2e-95bc-4bf500bc6e58"
	off24ID  = "a8973cb5-bf03-0a4c-9cef-703099645ab3"
	cmidA    = "aaaaaaaa-0000-4000-8000-000000000001"
	cmidB    = "bbbbbbbb-0000-4000-8000-000000000002"
	cmidC    = "cccccccc-0000-4000-8000-000000000003"
	cmidD    = "dddddddd-0000-4000-8000-000000000004"
	cmidE    = "eeeeeeee-0000-4000-8000-000000000005"
	cmidF    = "ffffffff-0000-4000-8000-000000000006"
	cmidOld  = "00000000-0000-4000-8000-000000000007"
	mismatch = 0xC004F042
)

// fixture: Windows 10/11 clients A (twice, two names: cloned), B, C and a
// refused F within 48 hours and one old client; a Server 2025 client 10
// hours ago; an Office 2024 VM an hour ago.
func fixture(t *testing.T) (*fakeStore, *web.Server) {
	t.Helper()
	h := func(d float64) time.Time { return testNow.Add(-time.Duration(d * float64(time.Hour))) }
	recs := []store.Activation{
		record(64, cmidA, "PC-ALPHA", h(30), 0),
		record(64, cmidA, "PC-ALPHA-CLONE", h(2), 0),
		record(64, cmidB, "PC-BRAVO", h(5.5), 0),
		record(64, cmidC, "pc-charlie", h(0.25), 0),
		record(64, cmidF, "PC-FOXTROT", h(0.5), mismatch),
		record(64, cmidOld, "PC-OLD", h(40*24), 0),
		record(133, cmidD, "SRV-DELTA", h(10), 0),
		record(238, cmidE, "OFFICE-ECHO", h(1), 0),
	}
	recs[7].VM = true
	recs[7].Peer = "192.0.2.55:1234"
	recs[6].BindingExpiration = 60 * 24 * 5 // 5 days left
	fs := newFakeStore()
	if err := fs.Add(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	return fs, &web.Server{Store: fs, Table: products.Builtin(), HostAddr: "kms.example.com:1688",
		Now: func() time.Time { return testNow }, Local: time.FixedZone("IST", 5*3600+1800)}
}

func get(t *testing.T, h http.Handler, path string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Result(), string(body)
}

func getJSON(t *testing.T, h http.Handler, path string, v any) {
	t.Helper()
	resp, body := get(t, h, path)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s: content type %q", path, ct)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, body)
	}
}

func page(t *testing.T, h http.Handler, path string) string {
	t.Helper()
	resp, body := get(t, h, path)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Fatalf("%s: content type %q", path, ct)
	}
	return body
}

func mustContain(t *testing.T, where, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("%s lacks %q", where, w)
		}
	}
}

func TestOverview(t *testing.T) {
	_, s := fixture(t)
	h := s.Handler()
	var o web.Overview
	getJSON(t, h, "/api/overview", &o)
	if o.Activations48h != 6 || o.Refused48h != 1 { // A twice, B, C, D, E; F refused
		t.Errorf("48h: %d activated %d refused, want 6 and 1", o.Activations48h, o.Refused48h)
	}
	sumA, sumR := 0, 0
	for _, b := range o.Hourly {
		sumA += b.Activated
		sumR += b.Refused
	}
	if len(o.Hourly) != 48 || sumA != 6 || sumR != 1 {
		t.Errorf("hourly: %d buckets, %d activated, %d refused", len(o.Hourly), sumA, sumR)
	}
	if !o.LastActivity.Equal(testNow.Add(-15 * time.Minute)) {
		t.Errorf("last activity %v", o.LastActivity)
	}
	if o.Cloned != 1 {
		t.Errorf("cloned %d, want 1", o.Cloned)
	}
	got := map[string]web.KMSOverview{}
	for _, k := range o.KMS {
		got[k.KMSID] = k
	}
	want := []struct {
		id            string
		active, n     int
		ok, refused   int
		warnings      []string
		lastActivityH float64
		name          string
	}{
		// A, B, C; the refused F is not counted, as a KMS host would not.
		{win10ID, 3, 25, 4, 1, []string{"count below threshold: 3 of 25 active clients in 30 days", "1 refused in 48 hours"}, 0.25, "Windows 10/11 (Volume)"},
		{srv25ID, 1, 5, 1, 0, []string{"count below threshold: 1 of 5 active clients in 30 days", "no activity for 10 hours"}, 10, "Windows Server 2025"},
		{off24ID, 1, 5, 1, 0, []string{"count below threshold: 1 of 5 active clients in 30 days"}, 1, "Office 2024 (Volume)"},
	}
	if len(o.KMS) != len(want) {
		t.Fatalf("%d KMS IDs, want %d: %+v", len(o.KMS), len(want), o.KMS)
	}
	if o.KMS[0].KMSID != win10ID {
		t.Errorf("first KMS ID %s, want the one with most clients", o.KMS[0].KMSID)
	}
	for _, w := range want {
		k := got[w.id]
		if k.ActiveClients != w.active || int(k.Threshold) != w.n || k.Activations48h != w.ok || k.Refused48h != w.refused || k.Name != w.name {
			t.Errorf("%s: %+v", w.id, k)
		}
		if fmt.Sprint(k.Warnings) != fmt.Sprint(w.warnings) {
			t.Errorf("%s warnings %q, want %q", w.name, k.Warnings, w.warnings)
		}
		if !k.LastActivity.Equal(testNow.Add(-time.Duration(w.lastActivityH * float64(time.Hour)))) {
			t.Errorf("%s last activity %v", w.name, k.LastActivity)
		}
	}

	body := page(t, h, "/")
	for _, w := range want {
		re := regexp.MustCompile(`data-kms="` + w.id + `"[\s\S]*?data-active="(\d+)"[\s\S]*?data-activated="(\d+)"`)
		m := re.FindStringSubmatch(body)
		if m == nil || m[1] != fmt.Sprint(w.active) || m[2] != fmt.Sprint(w.ok) {
			t.Errorf("overview page for %s shows %v, want %d active, %d activated", w.name, m, w.active, w.ok)
		}
	}
	mustContain(t, "overview", body, "<svg class=\"chart\"", "count below threshold", "no activity for 10 hours",
		"threshold 25 (N policy)", "1 client machine ID seen from several machine names")
	// 48 bars in the big chart plus 48 in each card.
	if n := strings.Count(body, `<rect class="hit"`); n != 4*48 {
		t.Errorf("%d chart bars, want %d", n, 4*48)
	}
}

func TestOverviewEmptyAndQuiet(t *testing.T) {
	fs := newFakeStore()
	s := &web.Server{Store: fs, Table: products.Builtin(), Now: func() time.Time { return testNow }}
	var o web.Overview
	getJSON(t, s.Handler(), "/api/overview", &o)
	if fmt.Sprint(o.Warnings) != "[no activations recorded yet]" || len(o.KMS) != 0 || o.KMS == nil && false {
		t.Errorf("empty overview: %+v", o)
	}
	body := page(t, s.Handler(), "/")
	mustContain(t, "empty overview", body, "No activations recorded yet")

	fs.Add(context.Background(), []store.Activation{record(64, cmidA, "PC", testNow.Add(-9*time.Hour), 0)})
	getJSON(t, s.Handler(), "/api/overview", &o)
	if len(o.Warnings) == 0 || o.Warnings[0] != "no activity for 9 hours" {
		t.Errorf("quiet host warnings %q", o.Warnings)
	}
}

func TestClients(t *testing.T) {
	_, s := fixture(t)
	h := s.Handler()
	var c web.Clients
	getJSON(t, h, "/api/clients", &c)
	if c.Total != 7 || len(c.Clients) != 7 || c.Pages != 1 {
		t.Fatalf("clients: total %d rows %d pages %d", c.Total, len(c.Clients), c.Pages)
	}
	if c.Clients[0].CMID != cmidC { // newest first
		t.Errorf("first row %s, want %s", c.Clients[0].CMID, cmidC)
	}
	byID := map[string]web.ClientRow{}
	for _, r := range c.Clients {
		byID[r.CMID] = r
	}
	a := byID[cmidA]
	if a.Activations != 2 || !a.Cloned || a.Workstation != "PC-ALPHA-CLONE" || len(a.Names) != 2 || a.KMSName != "Windows 10/11 (Volume)" {
		t.Errorf("client A: %+v", a)
	}
	if want := testNow.Add(-2 * time.Hour).Add(7 * 24 * time.Hour); !a.RenewalDue.Equal(want) {
		t.Errorf("renewal due %v, want %v", a.RenewalDue, want)
	}
	if f := byID[cmidF]; f.Result.Code != "0xC004F042" || f.Result.Message != "the KMS host declined: KMS ID mismatch" {
		t.Errorf("client F result %+v", f.Result)
	}
	if old := byID[cmidOld]; !old.Overdue {
		t.Errorf("old client not overdue: %+v", old)
	}

	cases := []struct {
		query string
		want  []string
	}{
		{"q=bravo", []string{cmidB}},
		{"q=192.0.2.55", []string{cmidE}},
		{"status=refused", []string{cmidF}},
		{"status=vm", []string{cmidE}},
		{"status=cloned", []string{cmidA}},
		{"product=Windows+Server+2025+Datacenter", []string{cmidD}},
		{"due=overdue", []string{cmidOld}},
		{"sort=workstation&dir=asc", []string{cmidE, cmidA, cmidB, cmidC, cmidF, cmidOld, cmidD}},
		{"sort=workstation&dir=desc", []string{cmidD, cmidOld, cmidF, cmidC, cmidB, cmidA, cmidE}},
		{"sort=last_seen&dir=asc&per=2&page=2", []string{cmidB, cmidA}},
		{"per=3&page=99", []string{cmidOld}}, // clamped to the last page
	}
	for _, tc := range cases {
		var got web.Clients
		getJSON(t, h, "/api/clients?"+tc.query, &got)
		var ids []string
		for _, r := range got.Clients {
			ids = append(ids, r.CMID)
		}
		if fmt.Sprint(ids) != fmt.Sprint(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.query, ids, tc.want)
		}
	}

	body := page(t, h, "/clients?per=2&sort=workstation&dir=asc")
	mustContain(t, "clients page", body, `data-total="7"`, "Page 1 of 4", cmidE, cmidA, "cloned",
		`href="/clients?dir=asc&amp;page=2&amp;per=2&amp;sort=workstation"`, `aria-sort="ascending"`)
	if strings.Contains(body, cmidB) {
		t.Error("page 1 of 2 rows shows a third client")
	}
	body = page(t, h, "/clients")
	for _, id := range []string{cmidA, cmidB, cmidC, cmidD, cmidE, cmidF, cmidOld} {
		mustContain(t, "clients page", body, `data-cmid="`+id+`"`)
	}
}

func TestActivity(t *testing.T) {
	_, s := fixture(t)
	h := s.Handler()
	var a web.Activity
	getJSON(t, h, "/api/activity", &a)
	if len(a.Records) != 8 || a.More {
		t.Fatalf("%d records, more %v", len(a.Records), a.More)
	}
	if a.Records[0].CMID != cmidC || a.Records[1].Result.Code != "0xC004F042" {
		t.Errorf("order: %s then %s", a.Records[0].CMID, a.Records[1].Result.Code)
	}
	if r := a.Records[0]; r.ClockSkew != -3 || r.Count != 50 || r.NPolicy != 25 || r.LicenseText != "initial grace" {
		t.Errorf("record %+v", r)
	}
	getJSON(t, h, "/api/activity?result=0xC004F042", &a)
	if len(a.Records) != 1 || a.Records[0].CMID != cmidF {
		t.Errorf("refusals: %+v", a.Records)
	}
	getJSON(t, h, "/api/activity?per=3&page=2", &a)
	if len(a.Records) != 3 || !a.More {
		t.Errorf("page 2 of 3: %d records, more %v", len(a.Records), a.More)
	}
	getJSON(t, h, "/api/activity?kms="+srv25ID, &a)
	if len(a.Records) != 1 || a.Records[0].CMID != cmidD {
		t.Errorf("by KMS ID: %+v", a.Records)
	}
	body := page(t, h, "/activity")
	mustContain(t, "activity page", body, "0xC004F042", "the KMS host declined: KMS ID mismatch",
		"0xC004F06C the request time stamp is invalid", "0x8007000D the data is invalid (unsupported protocol or N policy)",
		"0xC004D104 the security processor reported invalid data", "0xC004F038 the count reported by your KMS is insufficient")
	if n := strings.Count(body, "<tr data-hresult="); n != 8 {
		t.Errorf("%d rows, want 8", n)
	}
	body = page(t, h, "/activity?per=3&page=2")
	mustContain(t, "activity page 2", body, `href="/activity?page=1&amp;per=3"`, `href="/activity?page=3&amp;per=3"`)
}

func TestDecodeResult(t *testing.T) {
	for hr, want := range map[uint32]string{
		0:          "activated",
		0xC004F042: "the KMS host declined: KMS ID mismatch",
		0xC004F06C: "the request time stamp is invalid",
		0x8007000D: "the data is invalid (unsupported protocol or N policy)",
		0xC004D104: "the security processor reported invalid data",
		0xC004F038: "the count reported by your KMS is insufficient",
		0x80070005: "refused",
	} {
		if got := web.DecodeResult(hr).Message; got != want {
			t.Errorf("0x%08X: %q, want %q", hr, got, want)
		}
	}
}

func TestProducts(t *testing.T) {
	_, s := fixture(t)
	h := s.Handler()
	var p web.Products
	getJSON(t, h, "/api/products", &p)
	tab := products.Builtin()
	if len(p.Products) != len(tab.Products) || p.Host != "kms.example.com" || p.Port != 1688 {
		t.Fatalf("%d products (want %d), host %s:%d", len(p.Products), len(tab.Products), p.Host, p.Port)
	}
	cmds := func(n int) []string {
		var out []string
		for _, c := range p.Products[n-1].Commands {
			out = append(out, c.Text)
		}
		return out
	}
	if got := cmds(64); fmt.Sprint(got) != "[slmgr /ipk W269N-WFGWX-YVC9B-4J6C9-T83GX slmgr /skms kms.example.com:1688 slmgr /ato]" {
		t.Errorf("Windows 10 commands %q", got)
	}
	office := `cscript "C:\Program Files\Microsoft Office\Office16\ospp.vbs" `
	want := []string{office + "/inpkey:XJ2XN-FW8RK-P4HMP-DKDBV-GCVGB", office + "/sethst:kms.example.com", office + "/setprt:1688", office + "/act"}
	if got := cmds(238); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Office 2024 commands %q", got)
	}
	for _, row := range p.Products {
		switch {
		case row.Application == "Office 2010":
			if !strings.Contains(row.Commands[0].Text, `\Office14\ospp.vbs`) {
				t.Errorf("%s: %s", row.Name, row.Commands[0].Text)
			}
		case row.Office && row.Number > 0 && strings.Contains(row.KMSName, "2013"):
			if !strings.Contains(row.Commands[0].Text, `\Office15\ospp.vbs`) {
				t.Errorf("%s: %s", row.Name, row.Commands[0].Text)
			}
		}
		if row.GVLK == "" && strings.Contains(row.Commands[0].Text, "ipk") {
			t.Errorf("%s without GVLK has an ipk command", row.Name)
		}
	}

	getJSON(t, h, "/api/products?q=W269N", &p)
	if len(p.Products) != 1 || p.Products[0].Number != 64 {
		t.Errorf("filter: %+v", p.Products)
	}
	getJSON(t, h, "/api/products?app=Office+2010", &p)
	for _, row := range p.Products {
		if row.Application != "Office 2010" {
			t.Errorf("app filter let %s through", row.Name)
		}
	}

	body := page(t, h, "/products")
	mustContain(t, "products page", body, "slmgr /ipk W269N-WFGWX-YVC9B-4J6C9-T83GX", "slmgr /skms kms.example.com:1688",
		"slmgr /ato", `cscript &#34;C:\Program Files\Microsoft Office\Office16\ospp.vbs&#34; /inpkey:XJ2XN-FW8RK-P4HMP-DKDBV-GCVGB`,
		"/sethst:kms.example.com", "/setprt:1688", "/act", `class="copy"`)
	if n := strings.Count(body, `<details class="product"`); n != len(tab.Products) {
		t.Errorf("%d products on the page, want %d", n, len(tab.Products))
	}

	// A wildcard host address takes the dashboard's host name; IPv6 gets
	// brackets in slmgr /skms.
	s.HostAddr = "[::]:1700"
	req := httptest.NewRequest("GET", "/api/products?q=W269N", nil)
	req.Host = "[2001:db8::5]:8080"
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	json.Unmarshal(rec.Body.Bytes(), &p)
	if p.Host != "2001:db8::5" || p.Products[0].Commands[1].Text != "slmgr /skms [2001:db8::5]:1700" {
		t.Errorf("wildcard host: %s %+v", p.Host, p.Products[0].Commands)
	}

}

func TestReports(t *testing.T) {
	_, s := fixture(t)
	var r web.Reports
	getJSON(t, s.Handler(), "/api/reports", &r)
	ed := map[string]web.EditionCount{}
	for _, e := range r.Editions {
		ed[e.Product] = e
	}
	if w := ed["Windows 10/11 Professional"]; fmt.Sprint(w.Activations, w.Machines) != "[3 4 4 5] [3 3 3 4]" {
		t.Errorf("Windows 10/11 Professional: %v %v", w.Activations, w.Machines)
	}
	if w := ed["Windows Server 2025 Datacenter"]; fmt.Sprint(w.Activations) != "[1 1 1 1]" {
		t.Errorf("Server 2025: %v", w.Activations)
	}
	if fmt.Sprint(r.Totals.Activations) != "[5 6 6 7]" {
		t.Errorf("totals %v", r.Totals.Activations)
	}
	if len(r.VMDays) != 14 || r.VM != 1 || r.Physical != 5 {
		t.Errorf("vm days %d, vm %d physical %d", len(r.VMDays), r.VM, r.Physical)
	}
	if fmt.Sprint(r.Licence) != "[{2 initial grace 7}]" {
		t.Errorf("licence %v", r.Licence)
	}
	// Every client renews within 7 days; the old one is overdue; Server
	// 2025 reported a licence state ending in 5 days, before its renewal.
	if len(r.Expiring) != 7 || r.Expiring[0].CMID != cmidOld || !r.Expiring[0].Overdue || r.Expiring[0].Reason != "renewal overdue" {
		t.Fatalf("expiring %+v", r.Expiring)
	}
	for _, e := range r.Expiring {
		if e.CMID == cmidD && (e.Reason != "licence state ends" || !e.Expires.Equal(testNow.Add(-10*time.Hour+5*24*time.Hour))) {
			t.Errorf("Server 2025 client: %+v", e)
		}
	}
	body := page(t, s.Handler(), "/reports")
	mustContain(t, "reports page", body, "Activations per edition", "Windows 10/11 Professional", "Virtual and physical machines",
		"initial grace", "Expiring within 30 days", "renewal overdue", "licence state ends")
}

func TestTimeZone(t *testing.T) {
	_, s := fixture(t)
	h := s.Handler()
	utc := page(t, h, "/activity")
	local := page(t, h, "/activity?tz=local")
	// pc-charlie at 12:15 UTC is 17:45 in UTC+5:30.
	mustContain(t, "UTC page", utc, `title="2026-03-10 12:15:00 UTC · 15 min ago">2026-03-10 12:15<`, "<strong>UTC</strong>")
	mustContain(t, "local page", local, `title="2026-03-10 17:45:00 IST · 15 min ago">2026-03-10 17:45<`, "<strong>local</strong>",
		`href="/clients?tz=local"`, "Generated <time datetime=\"2026-03-10T12:30:00Z\">2026-03-10 18:00:00</time> IST")
	var a web.Activity
	getJSON(t, h, "/api/activity?tz=local", &a)
	if a.Records[0].Received.Location() != time.UTC || a.Records[0].Received.Hour() != 12 {
		t.Errorf("API times are not UTC: %v", a.Records[0].Received)
	}
}

func TestAuth(t *testing.T) {
	_, s := fixture(t)
	s.Auth = "s3cret"
	s.Health = func(context.Context) error { return nil }
	h := s.Handler()
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("anyone:s3cret"))
	wrong := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:nope"))
	for _, path := range []string{"/", "/clients", "/activity", "/products", "/reports", "/api/overview", "/api/clients",
		"/api/activity", "/api/products", "/api/reports", "/metrics", "/static/style.css"} {
		resp, _ := get(t, h, path)
		if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("%s without auth: %d", path, resp.StatusCode)
		}
		for _, auth := range []string{"Bearer s3cret", "bearer s3cret", basic} {
			if resp, _ := get(t, h, path, "Authorization", auth); resp.StatusCode != 200 && !(path == "/metrics" && resp.StatusCode == 404) {
				t.Errorf("%s with %q: %d", path, auth, resp.StatusCode)
			}
		}
		for _, auth := range []string{"Bearer s3cre", "Bearer s3cret2", wrong, "s3cret"} {
			if resp, _ := get(t, h, path, "Authorization", auth); resp.StatusCode != 401 {
				t.Errorf("%s with %q: %d", path, auth, resp.StatusCode)
			}
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if resp, _ := get(t, h, path); resp.StatusCode != 200 {
			t.Errorf("%s needs auth: %d", path, resp.StatusCode)
		}
	}
}

func TestHealthReady(t *testing.T) {
	_, s := fixture(t)
	calls := 0
	fail := errors.New("activation refused 0xC004F042")
	var result error
	s.Health = func(ctx context.Context) error {
		calls++
		if _, ok := ctx.Deadline(); !ok {
			t.Error("health check without deadline")
		}
		return result
	}
	ready := false
	s.Ready = func() bool { return ready }
	h := s.Handler()
	resp, body := get(t, h, "/healthz")
	if resp.StatusCode != 200 || body != "ok\n" {
		t.Errorf("healthz: %d %q", resp.StatusCode, body)
	}
	get(t, h, "/healthz") // cached
	if calls != 1 {
		t.Errorf("%d health checks, want 1 (cached)", calls)
	}
	result = fail
	s2 := &web.Server{Store: s.Store, Health: s.Health}
	resp, body = get(t, s2.Handler(), "/healthz")
	if resp.StatusCode != 503 || !strings.Contains(body, "activation refused 0xC004F042") {
		t.Errorf("failing healthz: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get(t, h, "/readyz"); resp.StatusCode != 503 {
		t.Errorf("readyz while not ready: %d", resp.StatusCode)
	}
	ready = true
	if resp, body := get(t, h, "/readyz"); resp.StatusCode != 200 || body != "ready\n" {
		t.Errorf("readyz: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get(t, (&web.Server{Store: s.Store}).Handler(), "/healthz"); resp.StatusCode != 200 {
		t.Errorf("healthz without a check: %d", resp.StatusCode)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	_, s := fixture(t)
	s.Metrics = metrics.New("test", products.Builtin())
	resp, body := get(t, s.Handler(), "/metrics")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != metrics.ContentType ||
		!strings.Contains(body, `kmsd_build_info{version="test"`) {
		t.Errorf("metrics: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}

func TestStoreError(t *testing.T) {
	fs, s := fixture(t)
	fs.err = errors.New("database is locked")
	h := s.Handler()
	for _, p := range []string{"/", "/clients", "/activity", "/reports"} {
		resp, body := get(t, h, p)
		if resp.StatusCode != 500 || !strings.Contains(body, "database is locked") {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
		resp, body = get(t, h, "/api"+strings.TrimSuffix(p, "/")+map[bool]string{true: "/overview"}[p == "/"])
		var e map[string]string
		if resp.StatusCode != 500 || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e["error"], "database is locked") {
			t.Errorf("api %s: %d %s", p, resp.StatusCode, body)
		}
	}
	// The products page needs no store.
	page(t, h, "/products")
}

func TestHeadersAndMethods(t *testing.T) {
	_, s := fixture(t)
	h := s.Handler()
	resp, body := get(t, h, "/products")
	csp := resp.Header.Get("Content-Security-Policy")
	m := regexp.MustCompile(`(?s)<script>(.*?)</script>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no inline script on the products page")
	}
	sum := sha256.Sum256([]byte(m[1]))
	if want := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, "script-src "+want) {
		t.Errorf("CSP %q does not allow the inline script (%s)", csp, want)
	}
	if regexp.MustCompile(`(src|href|action)="(https?:)?//`).MatchString(body) {
		t.Error("page references an external URL")
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("no nosniff")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/clients", nil))
	if rec.Code != 405 {
		t.Errorf("POST: %d", rec.Code)
	}
	if resp, _ := get(t, h, "/nope"); resp.StatusCode != 404 {
		t.Errorf("unknown page: %d", resp.StatusCode)
	}
	if resp, _ := get(t, h, "/api/nope"); resp.StatusCode != 404 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Errorf("unknown API: %d", resp.StatusCode)
	}
	resp, body = get(t, h, "/static/style.css")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") || !strings.Contains(body, "@media") {
		t.Errorf("stylesheet: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

func TestNoStore(t *testing.T) {
	s := &web.Server{Table: products.Builtin()}
	h := s.Handler()
	for _, p := range []string{"/", "/clients", "/api/activity", "/reports"} {
		if resp, body := get(t, h, p); resp.StatusCode != 500 || !strings.Contains(body, "no activation store configured") {
			t.Errorf("%s: %d %s", p, resp.StatusCode, body)
		}
	}
	page(t, h, "/products")
	if m := s.ActiveClientCounts(); len(m) != 0 {
		t.Errorf("counts without a store: %v", m)
	}
}

func TestActiveClientCounts(t *testing.T) {
	fs, s := fixture(t)
	m := s.ActiveClientCounts()
	want := map[metrics.KMSKey]int{
		{ID: win10ID, Name: "Windows 10/11 (Volume)"}: 3,
		{ID: srv25ID, Name: "Windows Server 2025"}:    1,
		{ID: off24ID, Name: "Office 2024 (Volume)"}:   1,
	}
	if fmt.Sprint(m) != fmt.Sprint(want) {
		t.Errorf("counts %v, want %v", m, want)
	}
	// Cached for a minute: a new client does not show at once.
	fs.Add(context.Background(), []store.Activation{record(133, "12345678-0000-4000-8000-000000000009", "SRV-NEW", testNow, 0)})
	if n := s.ActiveClientCounts()[metrics.KMSKey{ID: srv25ID, Name: "Windows Server 2025"}]; n != 1 {
		t.Errorf("not cached: %d", n)
	}
	later := testNow.Add(2 * time.Minute)
	s.Now = func() time.Time { return later }
	if n := s.ActiveClientCounts()[metrics.KMSKey{ID: srv25ID, Name: "Windows Server 2025"}]; n != 2 {
		t.Errorf("after the cache: %d", n)
	}
	// A failing store keeps the last answer.
	fs.err = errors.New("down")
	s.Now = func() time.Time { return later.Add(time.Hour) }
	if n := s.ActiveClientCounts()[metrics.KMSKey{ID: srv25ID, Name: "Windows Server 2025"}]; n != 2 {
		t.Errorf("after a failure: %d", n)
	}
}
