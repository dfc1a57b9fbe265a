package metrics_test

import (
	"bytes"
	"fmt"
	"math"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"kmsd/internal/kms"
	"kmsd/internal/metrics"
	"kmsd/internal/products"
	"kmsd/internal/server"
	"kmsd/internal/wire"
)

// decision builds what the host decides for product number n (1-based)
// with a result; n = 0 makes an undecodable request.
func decision(t *products.Table, n int, hr uint32) *kms.Decision {
	d := &kms.Decision{KMSItem: -1, HResult: hr}
	if n == 0 {
		d.Request.Outer = kms.Version{Major: 7}
		return d
	}
	p := &t.Products[n-1]
	d.Decrypted = true
	d.KMSItem = p.KMS
	d.Request.Outer = kms.Version{Major: t.KMSItems[p.KMS].Protocol}
	d.Request.Base.ActID = p.SKU
	d.Request.Base.KMSID = t.KMSItems[p.KMS].ID
	d.Count = 2 * t.KMSItems[p.KMS].NPolicy
	return d
}

func parse(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, text)
	}
	return fams
}

func labels(m *dto.Metric) string {
	var parts []string
	for _, l := range m.GetLabel() {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func values(t *testing.T, fams map[string]*dto.MetricFamily, name string, typ dto.MetricType) map[string]float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no family %s", name)
	}
	if f.GetType() != typ {
		t.Fatalf("%s has type %v, want %v", name, f.GetType(), typ)
	}
	if f.GetHelp() == "" {
		t.Errorf("%s has no HELP", name)
	}
	out := map[string]float64{}
	for _, m := range f.GetMetric() {
		switch typ {
		case dto.MetricType_COUNTER:
			out[labels(m)] = m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			out[labels(m)] = m.GetGauge().GetValue()
		}
	}
	return out
}

// checkHistogram checks cumulative buckets: increasing bounds, monotonic
// counts, and the +Inf bucket equal to the count.
func checkHistogram(t *testing.T, h *dto.Histogram) {
	t.Helper()
	prevBound, prevCount := math.Inf(-1), uint64(0)
	for _, b := range h.GetBucket() {
		if b.GetUpperBound() <= prevBound {
			t.Errorf("bucket bounds not increasing: %v after %v", b.GetUpperBound(), prevBound)
		}
		if b.GetCumulativeCount() < prevCount {
			t.Errorf("bucket le=%v count %d below previous %d", b.GetUpperBound(), b.GetCumulativeCount(), prevCount)
		}
		prevBound, prevCount = b.GetUpperBound(), b.GetCumulativeCount()
	}
	if !math.IsInf(prevBound, 1) {
		t.Fatalf("last bucket is le=%v, want +Inf", prevBound)
	}
	if prevCount != h.GetSampleCount() {
		t.Errorf("+Inf bucket %d != count %d", prevCount, h.GetSampleCount())
	}
}

func TestExposition(t *testing.T) {
	tab := products.Builtin()
	s := metrics.New("v1.2.3-test", tab)
	var st server.Stats
	st.Open.Store(3)
	st.Accepted.Store(40)
	st.Rejected.Store(7)
	s.WatchServer(&st)
	s.WatchStore(func() int { return 5 }, func() uint64 { return 2 }, func() uint64 { return 1 })
	s.WatchActiveClients(func() map[metrics.KMSKey]int {
		return map[metrics.KMSKey]int{
			{ID: "58e2134f-8e11-4d17-9cb2-91069c151148", Name: "Windows 10/11 (Volume)"}:            12,
			{ID: "00000000-0000-0000-0000-000000000001", Name: "odd \"name\" with \\ and\nnewline"}: 1,
		}
	})
	s.GaugeFunc("kmsd_test_gauge", "A gauge with a \\ backslash\nand a newline.", func() float64 { return 0.5 })

	events := []struct {
		product int
		hr      uint32
		elapsed time.Duration
		times   int
	}{
		{64, 0, 50 * time.Microsecond, 5},
		{64, 0, 3 * time.Millisecond, 2},
		{133, 0, 300 * time.Microsecond, 3},
		{238, 0, 2 * time.Second, 1},
		{64, kms.HResultKMSIDMismatch, time.Millisecond, 4},
		{0, kms.HResultInvalidData, 100 * time.Microsecond, 1},
	}
	var sum time.Duration
	total := 0
	for _, e := range events {
		for range e.times {
			s.Record(&server.Event{Time: time.Now(), Decision: decision(tab, e.product, e.hr), Elapsed: e.elapsed})
			sum += e.elapsed
			total++
		}
	}
	// An unknown SKU of a known KMS ID is named after the KMS item.
	d := decision(tab, 64, 0)
	d.Request.Base.ActID = wire.MustGUID("11111111-2222-3333-4444-555555555555")
	s.Record(&server.Event{Decision: d, Elapsed: time.Microsecond})
	sum += time.Microsecond
	total++

	var buf bytes.Buffer
	if err := s.WritePrometheus(&buf); err != nil {
		t.Fatal(err)
	}
	fams := parse(t, buf.String())

	acts := values(t, fams, "kmsd_activations_total", dto.MetricType_COUNTER)
	want := map[string]float64{
		"product=Windows 10/11 Professional,protocol=6.0,result=activated":         7,
		"product=Windows Server 2025 Datacenter,protocol=6.0,result=activated":     3,
		"product=Office LTSC Professional Plus 2024,protocol=6.0,result=activated": 1,
		"product=Windows 10/11 Professional,protocol=6.0,result=0xC004F042":        4,
		"product=unknown,protocol=unsupported,result=0x8007000D":                   1,
		"product=Windows 10/11 (Volume),protocol=6.0,result=activated":             1,
	}
	if fmt.Sprint(acts) != fmt.Sprint(want) {
		t.Errorf("activations:\n got %v\nwant %v", acts, want)
	}

	h := fams["kmsd_activation_duration_seconds"]
	if h.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("duration type %v", h.GetType())
	}
	hist := h.GetMetric()[0].GetHistogram()
	checkHistogram(t, hist)
	if hist.GetSampleCount() != uint64(total) {
		t.Errorf("histogram count %d, want %d", hist.GetSampleCount(), total)
	}
	if math.Abs(hist.GetSampleSum()-sum.Seconds()) > 1e-9 {
		t.Errorf("histogram sum %v, want %v", hist.GetSampleSum(), sum.Seconds())
	}
	le := map[float64]uint64{}
	for _, b := range hist.GetBucket() {
		le[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	// 5×50µs + 1×1µs ≤ 0.0001; +1×100µs (inclusive bound) = 7.
	if le[0.0001] != 7 || le[0.0005] != 10 || le[0.001] != 14 || le[0.005] != 16 || le[1] != 16 {
		t.Errorf("buckets %v", le)
	}

	gauge := func(name string) map[string]float64 { return values(t, fams, name, dto.MetricType_GAUGE) }
	counter := func(name string) map[string]float64 { return values(t, fams, name, dto.MetricType_COUNTER) }
	checks := []struct {
		got  map[string]float64
		want string
	}{
		{gauge("kmsd_connections_open"), "map[:3]"},
		{counter("kmsd_connections_accepted_total"), "map[:40]"},
		{counter("kmsd_connections_rejected_total"), "map[:7]"},
		{gauge("kmsd_store_queue_depth"), "map[:5]"},
		{counter("kmsd_store_dropped_total"), "map[:2]"},
		{counter("kmsd_store_errors_total"), "map[:1]"},
		{gauge("kmsd_test_gauge"), "map[:0.5]"},
		{gauge("kmsd_active_clients"), "map[kms_id=00000000-0000-0000-0000-000000000001,kms_name=odd \"name\" with \\ and\nnewline:1 " +
			"kms_id=58e2134f-8e11-4d17-9cb2-91069c151148,kms_name=Windows 10/11 (Volume):12]"},
		{gauge("kmsd_current_count"), "map[kms_id=58e2134f-8e11-4d17-9cb2-91069c151148,kms_name=Windows 10/11 (Volume):50 " +
			"kms_id=907f1f65-adcd-4a2e-95bc-4bf500bc6e58,kms_name=Windows Server 2025:10 " +
			"kms_id=a8973cb5-bf03-0a4c-9cef-703099645ab3,kms_name=Office 2024 (Volume):10]"},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != c.want {
			t.Errorf("got %v\nwant %s", c.got, c.want)
		}
	}
	if got := fams["kmsd_test_gauge"].GetHelp(); got != "A gauge with a \\ backslash\nand a newline." {
		t.Errorf("help round trip: %q", got)
	}
	bi := gauge("kmsd_build_info")
	if len(bi) != 1 {
		t.Fatalf("build info %v", bi)
	}
	for k, v := range bi {
		if !strings.Contains(k, "version=v1.2.3-test") || v != 1 {
			t.Errorf("build info %s %v", k, v)
		}
	}
}

// TestEscaping checks the raw lines for label escaping.
func TestEscaping(t *testing.T) {
	tab := products.Builtin()
	s := metrics.New("dev", tab)
	s.ProductName = func(*kms.Decision) string { return "a\"b\\c\nd" }
	s.Record(&server.Event{Decision: decision(tab, 1, 0)})
	var buf bytes.Buffer
	s.WritePrometheus(&buf)
	line := `kmsd_activations_total{product="a\"b\\c\nd",protocol="4.0",result="activated"} 1`
	if !strings.Contains(buf.String(), line+"\n") {
		t.Errorf("missing %s in\n%s", line, buf.String())
	}
	fams := parse(t, buf.String())
	if got := labels(fams["kmsd_activations_total"].GetMetric()[0]); got != "product=a\"b\\c\nd,protocol=4.0,result=activated" {
		t.Errorf("labels %q", got)
	}
}

// TestConcurrent records from many goroutines while scraping; the final
// totals match and every scrape parses (run with -race).
func TestConcurrent(t *testing.T) {
	tab := products.Builtin()
	s := metrics.New("dev", tab)
	const workers, each = 8, 500
	var wg sync.WaitGroup
	stop := make(chan struct{})
	scrapes := make(chan string, 1)
	go func() {
		var last string
		for {
			select {
			case <-stop:
				scrapes <- last
				return
			default:
			}
			var buf bytes.Buffer
			s.WritePrometheus(&buf)
			last = buf.String()
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				s.Record(&server.Event{Decision: decision(tab, 1+(w*each+i)%len(tab.Products), 0), Elapsed: time.Duration(i) * time.Microsecond})
			}
		}()
	}
	wg.Wait()
	close(stop)
	parse(t, <-scrapes)
	var buf bytes.Buffer
	s.WritePrometheus(&buf)
	fams := parse(t, buf.String())
	var n float64
	for _, v := range values(t, fams, "kmsd_activations_total", dto.MetricType_COUNTER) {
		n += v
	}
	if n != workers*each {
		t.Errorf("total %v, want %d", n, workers*each)
	}
	hist := fams["kmsd_activation_duration_seconds"].GetMetric()[0].GetHistogram()
	checkHistogram(t, hist)
	if hist.GetSampleCount() != workers*each {
		t.Errorf("histogram count %d", hist.GetSampleCount())
	}
}

func TestRecordAllocs(t *testing.T) {
	tab := products.Builtin()
	s := metrics.New("dev", tab)
	e := &server.Event{Decision: decision(tab, 64, 0), Elapsed: time.Millisecond}
	s.Record(e)
	if n := testing.AllocsPerRun(100, func() { s.Record(e) }); n != 0 {
		t.Errorf("Record allocates %v times per call", n)
	}
}

func TestServeHTTP(t *testing.T) {
	s := metrics.New("dev", nil)
	s.Record(&server.Event{Decision: decision(products.Builtin(), 5, 0)})
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); ct != metrics.ContentType {
		t.Errorf("content type %q", ct)
	}
	fams := parse(t, rec.Body.String())
	// Without a table every product is unknown.
	if got := values(t, fams, "kmsd_activations_total", dto.MetricType_COUNTER); fmt.Sprint(got) != "map[product=unknown,protocol=4.0,result=activated:1]" {
		t.Errorf("got %v", got)
	}
}

func TestRegisterRejects(t *testing.T) {
	s := metrics.New("dev", nil)
	for _, name := range []string{"", "1abc", "a-b", "kmsd_activations_total"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("GaugeFunc(%q) accepted", name)
				}
			}()
			s.GaugeFunc(name, "x", func() float64 { return 0 })
		}()
	}
	s.GaugeFunc("kmsd_x", "first", func() float64 { return 1 })
	s.GaugeFunc("kmsd_x", "second", func() float64 { return 2 })
	var buf bytes.Buffer
	s.WritePrometheus(&buf)
	if strings.Count(buf.String(), "# TYPE kmsd_x ") != 1 || !strings.Contains(buf.String(), "kmsd_x 2\n") {
		t.Errorf("replacement failed:\n%s", buf.String())
	}
}

func BenchmarkRecord(b *testing.B) {
	tab := products.Builtin()
	s := metrics.New("dev", tab)
	e := &server.Event{Decision: decision(tab, 64, 0), Elapsed: time.Millisecond}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Record(e)
		}
	})
}
