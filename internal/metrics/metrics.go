// Package metrics keeps kmsd's counters and writes them in the Prometheus
// text exposition format 0.0.4, by hand. Every metric kmsd exposes is
// defined in this file, over one Set; a Set is the server's Recorder.
package metrics

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"kmsd/internal/kms"
	"kmsd/internal/products"
	"kmsd/internal/server"
)

// Metric names and help texts: the whole list kmsd exposes.
const (
	nameActivations   = "kmsd_activations_total"
	helpActivations   = "Activation requests answered, by product, protocol and result (activated or the refusal HRESULT)."
	nameDuration      = "kmsd_activation_duration_seconds"
	helpDuration      = "Time from receiving an activation request to having its answer."
	nameCurrentCount  = "kmsd_current_count"
	helpCurrentCount  = "Count the host last answered for a KMS ID."
	nameActiveClients = "kmsd_active_clients"
	helpActiveClients = "Distinct client machine IDs of a KMS ID seen in the last 30 days."
	nameOpen          = "kmsd_connections_open"
	helpOpen          = "KMS connections open now."
	nameAccepted      = "kmsd_connections_accepted_total"
	helpAccepted      = "KMS connections accepted."
	nameRejected      = "kmsd_connections_rejected_total"
	helpRejected      = "KMS connections closed before reading a byte (access control, limits)."
	nameQueueDepth    = "kmsd_store_queue_depth"
	helpQueueDepth    = "Activation records waiting to be written to the store."
	nameDropped       = "kmsd_store_dropped_total"
	helpDropped       = "Activation records dropped because the store queue was full."
	nameStoreErrors   = "kmsd_store_errors_total"
	helpStoreErrors   = "Failed writes to the store."
	nameBuildInfo     = "kmsd_build_info"
	helpBuildInfo     = "Build information; the value is always 1."
)

// DurationBuckets are the upper bounds, in seconds, of the activation
// duration histogram.
var DurationBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}

// maxSeries bounds the label combinations of kmsd_activations_total; later
// combinations are counted under product="other".
const maxSeries = 4096

// Result label of a successful activation.
const resultActivated = "activated"

// Set holds every metric. Create it with New; it is safe for concurrent
// use, and Record never blocks on anything but a short critical section.
type Set struct {
	version string
	table   *products.Table
	// ProductName, when set, names the product label of an event; an empty
	// answer falls back to the KMS item's name, then "unknown". It must
	// return a bounded set of names (not, for example, a SKU ID). Set it
	// before the first Record.
	ProductName func(d *kms.Decision) string

	activations sync.Map // activationKey -> *atomic.Uint64
	series      atomic.Int64
	duration    histogram
	counts      []atomic.Uint64 // per KMS item: count last answered (+1, 0 = never)

	mu     sync.Mutex
	funcs  []funcMetric // in registration order; replaced by name
	active func() map[KMSKey]int
}

type activationKey struct {
	product  string
	protocol string
	hresult  uint32
}

// KMSKey names one KMS ID in kmsd_active_clients.
type KMSKey struct {
	ID   string // KMS ID, GUID text
	Name string // KMS item name, or "" when unknown
}

type funcMetric struct {
	name, help, typ string
	f               func() float64
}

// New returns a Set for a build version, naming products from t (which
// may be nil: every product is then "unknown").
func New(version string, t *products.Table) *Set {
	s := &Set{version: version, table: t, duration: newHistogram(DurationBuckets)}
	if t != nil {
		s.counts = make([]atomic.Uint64, len(t.KMSItems))
	}
	return s
}

// Record counts one activation decision (server.Recorder).
func (s *Set) Record(e *server.Event) {
	d := e.Decision
	k := activationKey{product: s.product(d), protocol: protocolLabel(d), hresult: d.HResult}
	s.counter(k).Add(1)
	s.duration.observe(e.Elapsed)
	if d.HResult == 0 && d.KMSItem >= 0 && d.KMSItem < len(s.counts) {
		s.counts[d.KMSItem].Store(uint64(d.Count) + 1)
	}
}

var _ server.Recorder = (*Set)(nil)

func (s *Set) counter(k activationKey) *atomic.Uint64 {
	if c, ok := s.activations.Load(k); ok {
		return c.(*atomic.Uint64)
	}
	if s.series.Load() >= maxSeries {
		k.product = "other"
	}
	c, loaded := s.activations.LoadOrStore(k, new(atomic.Uint64))
	if !loaded {
		s.series.Add(1)
	}
	return c.(*atomic.Uint64)
}

func (s *Set) product(d *kms.Decision) string {
	if !d.Decrypted {
		return "unknown"
	}
	t := s.table
	if d.Table != nil {
		t = d.Table // KMSItem indexes the table the host decided with
	}
	if s.ProductName != nil {
		if n := s.ProductName(d); n != "" {
			return n
		}
	} else if t != nil {
		if i := t.ProductBySKU(d.Request.Base.ActID); i >= 0 {
			return t.Products[i].Name
		}
	}
	if t != nil && d.KMSItem >= 0 && d.KMSItem < len(t.KMSItems) {
		return t.KMSItems[d.KMSItem].Name
	}
	return "unknown"
}

// protocolLabel is "4.0", "5.0", "6.0" or "unsupported", so that a client
// cannot create series at will.
func protocolLabel(d *kms.Decision) string {
	switch v := d.Request.Outer; {
	case !v.Supported():
		return "unsupported"
	case v.Major == 4:
		return "4.0"
	case v.Major == 5:
		return "5.0"
	default:
		return "6.0"
	}
}

func resultLabel(hr uint32) string {
	if hr == 0 {
		return resultActivated
	}
	return fmt.Sprintf("0x%08X", hr)
}

// WatchServer exposes the connection counters of a KMS server.
func (s *Set) WatchServer(st *server.Stats) {
	s.register(nameOpen, helpOpen, "gauge", func() float64 { return float64(st.Open.Load()) })
	s.register(nameAccepted, helpAccepted, "counter", func() float64 { return float64(st.Accepted.Load()) })
	s.register(nameRejected, helpRejected, "counter", func() float64 { return float64(st.Rejected.Load()) })
}

// WatchStore exposes the store writer's queue depth, dropped records and
// write errors; nil functions are left out.
func (s *Set) WatchStore(depth func() int, dropped, errs func() uint64) {
	if depth != nil {
		s.register(nameQueueDepth, helpQueueDepth, "gauge", func() float64 { return float64(depth()) })
	}
	if dropped != nil {
		s.register(nameDropped, helpDropped, "counter", func() float64 { return float64(dropped()) })
	}
	if errs != nil {
		s.register(nameStoreErrors, helpStoreErrors, "counter", func() float64 { return float64(errs()) })
	}
}

// WatchActiveClients exposes kmsd_active_clients from f, called on every
// scrape; f should answer quickly (cache if it queries a database).
func (s *Set) WatchActiveClients(f func() map[KMSKey]int) {
	s.mu.Lock()
	s.active = f
	s.mu.Unlock()
}

// GaugeFunc exposes a gauge read from f on every scrape. A second call with
// the same name replaces the first. The name must be a valid metric name.
func (s *Set) GaugeFunc(name, help string, f func() float64) { s.register(name, help, "gauge", f) }

// CounterFunc is GaugeFunc for a counter (a value that only goes up).
func (s *Set) CounterFunc(name, help string, f func() float64) { s.register(name, help, "counter", f) }

func (s *Set) register(name, help, typ string, f func() float64) {
	if !validName(name) || reserved(name) {
		panic("metrics: invalid or reserved metric name " + name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := funcMetric{name: name, help: help, typ: typ, f: f}
	for i := range s.funcs {
		if s.funcs[i].name == name {
			s.funcs[i] = m
			return
		}
	}
	s.funcs = append(s.funcs, m)
}

// reserved reports whether name belongs to a metric the Set writes itself.
func reserved(name string) bool {
	for _, r := range []string{nameActivations, nameDuration, nameCurrentCount, nameActiveClients, nameBuildInfo} {
		if strings.HasPrefix(name, r) {
			return true
		}
	}
	return false
}

// ContentType is the media type of WritePrometheus's output.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// ServeHTTP writes the metrics (the /metrics endpoint).
func (s *Set) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("Cache-Control", "no-store")
	if r.Method == http.MethodHead {
		return
	}
	s.WritePrometheus(w)
}

// histogram is a fixed-bucket histogram with atomic counters; buckets hold
// per-bucket (not cumulative) counts, the last one being +Inf.
type histogram struct {
	bounds  []float64
	buckets []atomic.Uint64
	sumNano atomic.Int64
}

func newHistogram(bounds []float64) histogram {
	return histogram{bounds: bounds, buckets: make([]atomic.Uint64, len(bounds)+1)}
}

func (h *histogram) observe(d time.Duration) {
	v := d.Seconds()
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.sumNano.Add(int64(d))
}
