package web_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"kmsd/internal/client"
	"kmsd/internal/kms"
	"kmsd/internal/metrics"
	"kmsd/internal/products"
	"kmsd/internal/rpc"
	"kmsd/internal/server"
	"kmsd/internal/store"
	"kmsd/internal/web"
	"kmsd/internal/wire"
)

// storeRecorder turns server events into store records synchronously (the
// decision is only valid during the call).
type storeRecorder struct {
	t      *testing.T
	table  *products.Table
	policy kms.Policy
	st     store.Store
	next   server.Recorder
}

func (r *storeRecorder) Record(e *server.Event) {
	d := e.Decision
	b := &d.Request.Base
	a := store.Activation{Received: e.Time.UTC(), Host: "browser-test", Peer: e.Peer.String(),
		Protocol: d.Request.Outer.String(), HResult: d.HResult, Count: d.Count, EPID: d.EPID}
	if d.Decrypted {
		a.NPolicy, a.Workstation, a.CMID = b.NPolicy, b.WorkstationName(), b.CMID.String()
		if !b.CMIDPrev.IsZero() {
			a.PreviousCMID = b.CMIDPrev.String()
		}
		a.ClientTime, a.VM = wire.Time(b.ClientTime).UTC(), b.VMInfo != 0
		a.LicenseStatus, a.BindingExpiration = b.LicenseStatus, b.BindingExpiration
		a.AppID, a.SKUID, a.KMSID = b.AppID.String(), b.ActID.String(), b.KMSID.String()
		if i := r.table.ProductBySKU(b.ActID); i >= 0 {
			a.Product = r.table.Products[i].Name
		}
		if d.KMSItem >= 0 {
			a.KMSName = r.table.KMSItems[d.KMSItem].Name
		}
	}
	if d.HResult == 0 {
		a.ActivationInterval, a.RenewalInterval = r.policy.ActivationInterval, r.policy.RenewalInterval
	}
	if err := r.st.Add(context.Background(), []store.Activation{a}); err != nil {
		r.t.Errorf("store: %v", err)
	}
	if r.next != nil {
		r.next.Record(e)
	}
}

type recorders []server.Recorder

func (rs recorders) Record(e *server.Event) {
	for _, r := range rs {
		r.Record(e)
	}
}

// activation is one client run of the browser test.
type activation struct {
	product     int // vlmcs -x number
	cmid        string
	workstation string
	vm          bool
	nPolicy     uint32 // override, 0 = the product's
}

func findChromium() string {
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestBrowser activates clients against a real in-process host, then
// renders every page in headless Chromium, checks the numbers in the DOM
// and saves screenshots (in $KMSD_TEST_OUTPUT, or a temporary folder).
func TestBrowser(t *testing.T) {
	chromium := findChromium()
	if chromium == "" {
		if os.Getenv("KMSD_REQUIRE_BROWSER") != "" {
			t.Fatal("chromium not found and KMSD_REQUIRE_BROWSER is set (apt-get install chromium)")
		}
		t.Skip("chromium not found (apt-get install chromium); set KMSD_REQUIRE_BROWSER to fail instead")
	}
	out := os.Getenv("KMSD_TEST_OUTPUT")
	if out == "" {
		out = t.TempDir()
	} else if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}

	table := products.Builtin()
	st := newFakeStore()
	set := metrics.New("browser-test", table)
	kmsAddr, srv := startHost(t, table, st, set)
	ws := &web.Server{Store: st, Table: table, Metrics: set, HostAddr: kmsAddr,
		Health: func(context.Context) error { return nil }, Ready: func() bool { return true }}
	set.WatchServer(&srv.Stats)
	set.WatchActiveClients(ws.ActiveClientCounts)
	webURL := startWebServer(t, ws)

	runs := []activation{
		{64, "a1a1a1a1-1111-4111-8111-000000000001", "WS-ACCOUNTING-01", false, 0},
		{64, "a1a1a1a1-1111-4111-8111-000000000002", "WS-ACCOUNTING-02", false, 0},
		{64, "a1a1a1a1-1111-4111-8111-000000000003", "LAPTOP-SALES-07", false, 0},
		{133, "b2b2b2b2-2222-4222-8222-000000000001", "SRV-FILES-01", true, 0},
		{133, "b2b2b2b2-2222-4222-8222-000000000002", "SRV-SQL-02", true, 0},
		{238, "c3c3c3c3-3333-4333-8333-000000000001", "WS-DESIGN-03", false, 0},
		{64, "d4d4d4d4-4444-4444-8444-000000000001", "WS-BROKEN-99", false, 1001}, // refused 0x8007000D
	}
	for _, a := range runs {
		activate(t, table, kmsAddr, a)
	}

	shot := func(name, path string, size string, extra ...string) string {
		t.Helper()
		file := filepath.Join(out, name+".png")
		runChromium(t, chromium, append(extra, "--window-size="+size, "--screenshot="+file, webURL+path)...)
		if fi, err := os.Stat(file); err != nil || fi.Size() < 1000 {
			t.Fatalf("screenshot %s: %v", file, err)
		}
		return file
	}
	dom := func(path string) string {
		t.Helper()
		return runChromium(t, chromium, "--window-size=1280,1600", "--dump-dom", webURL+path)
	}

	// Overview: active clients and activations per KMS ID.
	d := dom("/")
	for _, w := range []struct {
		kmsID             string
		active, activated int
	}{
		{"58e2134f-8e11-4d17-9cb2-91069c151148", 3, 3}, // the refused client is not active
		{"907f1f65-adcd-4a2e-95bc-4bf500bc6e58", 2, 2},
		{"a8973cb5-bf03-0a4c-9cef-703099645ab3", 1, 1},
	} {
		re := regexp.MustCompile(`data-kms="` + w.kmsID + `"[\s\S]*?data-active="(\d+)"[\s\S]*?data-activated="(\d+)"`)
		m := re.FindStringSubmatch(d)
		if m == nil || m[1] != fmt.Sprint(w.active) || m[2] != fmt.Sprint(w.activated) {
			t.Errorf("overview for %s shows %v, want %d active and %d activated", w.kmsID, m[1:], w.active, w.activated)
		}
	}
	mustContain(t, "overview DOM", d, "count below threshold", "Windows 10/11 (Volume)", "Windows Server 2025", "Office 2024 (Volume)")

	// Clients: every CMID, with the refusal.
	d = dom("/clients")
	for _, a := range runs {
		mustContain(t, "clients DOM", d, `data-cmid="`+a.cmid+`"`, a.workstation)
	}
	mustContain(t, "clients DOM", d, `data-total="7"`, "0x8007000D")

	// Activity: seven records, the refusal decoded.
	d = dom("/activity")
	if n := strings.Count(d, "<tr data-hresult="); n != len(runs) {
		t.Errorf("activity shows %d records, want %d", n, len(runs))
	}
	mustContain(t, "activity DOM", d, "the data is invalid (unsupported protocol or N policy)")

	// Products: the commands name this host; the copy buttons are shown
	// by the inline script (allowed by the CSP).
	d = dom("/products?q=W269N")
	_, port, _ := net.SplitHostPort(kmsAddr)
	mustContain(t, "products DOM", d, "slmgr /skms 127.0.0.1:"+port, "slmgr /ipk W269N-WFGWX-YVC9B-4J6C9-T83GX")
	if !regexp.MustCompile(`<button type="button" class="copy" data-copy="[^"]*">`).MatchString(d) {
		t.Error("copy buttons still hidden: the inline script did not run")
	}

	// Reports.
	d = dom("/reports")
	mustContain(t, "reports DOM", d, "Windows 10/11 Professional", "Windows Server 2025 Datacenter",
		"Office LTSC Professional Plus 2024", "Expiring within 30 days")

	for _, p := range []struct{ name, path string }{
		{"overview", "/"}, {"clients", "/clients"}, {"activity", "/activity"}, {"products", "/products"},
		{"products-open", "/products?q=Office+LTSC+Professional+Plus+2024"}, {"reports", "/reports"},
	} {
		shot(p.name, p.path, "1280,1600")
	}
	shot("overview-phone", "/", "390,844")
	shot("clients-phone", "/clients", "390,844")
	shot("products-phone", "/products?q=W269N", "390,844")

	// The metrics saw the same requests.
	resp, err := http.Get(webURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf strings.Builder
	if _, err := fmt.Fprint(&buf, readAll(t, resp)); err != nil {
		t.Fatal(err)
	}
	mustContain(t, "metrics", buf.String(),
		`kmsd_activations_total{product="Windows 10/11 Professional",protocol="6.0",result="activated"} 3`,
		`kmsd_activations_total{product="Windows 10/11 Professional",protocol="6.0",result="0x8007000D"} 1`,
		`kmsd_activation_duration_seconds_count 7`,
		`kmsd_active_clients{kms_id="907f1f65-adcd-4a2e-95bc-4bf500bc6e58",kms_name="Windows Server 2025"} 2`)

	// The same pages over 90 days of synthetic history, to judge the
	// layout with realistic volume.
	demo := &web.Server{Store: demoStore(t, time.Now().UTC()), Table: table, HostAddr: "kms.example.com:1688"}
	webURL = startWebServer(t, demo)
	for _, p := range []struct{ name, path string }{
		{"demo-overview", "/"}, {"demo-clients", "/clients?sort=renewal_due"}, {"demo-activity", "/activity"},
		{"demo-reports", "/reports"},
	} {
		shot(p.name, p.path, "1280,1600")
	}
	shot("demo-overview-phone", "/", "390,844")
	shot("demo-activity-phone", "/activity", "390,844")
	shot("demo-overview-dark", "/", "1280,1600", "--force-dark-mode", "--blink-settings=preferredColorScheme=0")
	t.Logf("screenshots in %s", out)

}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

func startHost(t *testing.T, table *products.Table, st store.Store, next server.Recorder) (string, *server.Server) {
	t.Helper()
	slots := make([]kms.Slot, len(table.CSVLKs))
	for i, k := range table.CSVLKs {
		slots[i] = kms.NewSlot(k.BuiltinEPID, kms.DefaultHWID)
	}
	policy := kms.Policy{ActivationInterval: kms.DefaultActivationInterval, RenewalInterval: kms.DefaultRenewalInterval}
	srv := &server.Server{
		Host:        &kms.Host{Table: table, Slots: slots, Policy: policy, Env: kms.Env{Rand: rand.Reader, Now: time.Now}},
		Negotiation: rpc.Negotiation{NDR64: true, BTFN: true},
		IdleTimeout: 5 * time.Second,
		Recorder:    &storeRecorder{t: t, table: table, policy: policy, st: st, next: recorders{next}},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return l.Addr().String(), srv
}

func startWebServer(t *testing.T, ws *web.Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: ws.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	return "http://" + l.Addr().String()
}

func activate(t *testing.T, table *products.Table, addr string, a activation) {
	t.Helper()
	opt := client.DefaultOptions(table, kms.Env{Rand: rand.Reader, Now: time.Now})
	i, ok := table.Lookup(fmt.Sprint(a.product))
	if !ok {
		t.Fatalf("no product %d", a.product)
	}
	cmid := wire.MustGUID(a.cmid)
	opt.Product, opt.CMID, opt.Workstation, opt.VM = i, &cmid, a.workstation, a.vm
	opt.Timeout = 5 * time.Second
	if a.nPolicy != 0 {
		opt.NPolicy = &a.nPolicy
	}
	c := &client.Client{Addr: addr, Opt: opt}
	res := c.Run(context.Background())
	if len(res) != 1 || res[0].Err != nil {
		t.Fatalf("activate %+v: %+v", a, res)
	}
	if refused := a.nPolicy > kms.MaxNPolicy; refused != (res[0].HResult != 0) {
		t.Fatalf("activate %+v: HRESULT 0x%08X", a, res[0].HResult)
	}
}

// runChromium runs headless Chromium once with a fresh profile and returns
// its standard output.
func runChromium(t *testing.T, chromium string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, chromium, append(base, args...)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("chromium %v timed out", args)
		}
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.String()
}
