// Package bench is a load generator for KMS hosts (kmsd, vlmcsd, py-kms):
// concurrent workers send activation requests over DCE/RPC, verify every
// answer as the client emulator does and report the rate, the latency
// percentiles and the errors by kind. NullHost is an in-process host that
// replays one pre-built answer, to measure the ceiling of the load generator
// itself.
package bench

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"kmsd/internal/client"
	"kmsd/internal/kms"
	"kmsd/internal/products"
	"kmsd/internal/rpc"
	"kmsd/internal/wire"
)

// Modes.
const (
	ModeNew       = "new"       // a new connection (connect, bind, request, close) per activation
	ModeKeepAlive = "keepalive" // PerConn activations per connection
)

// Defaults and limits.
const (
	DefaultTarget      = "127.0.0.1:1688"
	DefaultConcurrency = 16
	DefaultPerConn     = 50
	DefaultMajor       = 6
	DefaultProduct     = 63 // number 64, Windows 10/11 Professional
	DefaultCount       = 10000
	DefaultDuration    = 30 * time.Second
	DefaultTimeout     = 5 * time.Second
	MaxConcurrency     = 4096
	MaxCount           = 10_000_000
	MaxDuration        = 10 * time.Minute
	MaxTimeout         = 10 * time.Minute
)

// Config selects what to run. Zero numeric fields take their defaults,
// except Product, for which 0 is product number 1: start from
// DefaultConfig.
type Config struct {
	Target      string // host:port; loopback only unless AllowRemote
	AllowRemote bool
	Mode        string // ModeNew or ModeKeepAlive
	Concurrency int    // workers, each with at most one connection
	PerConn     int    // keep-alive: activations per connection
	Major       uint16 // protocol 4, 5 or 6
	Product     int    // 0-based index into the built-in product table
	Count       int    // total activations, at most MaxCount
	Duration    time.Duration
	Timeout     time.Duration // per connect and per activation
	Progress    io.Writer     // one \r-updated line per second; nil = none
	// FixedRequest, when set, is the request payload sent for every
	// activation instead of a fresh one (NullHost.Request). Answers are
	// still verified against it.
	FixedRequest []byte
}

// DefaultConfig returns the defaults: loopback port 1688, new connection
// per activation, 16 workers, protocol 6, Windows 10/11 Professional,
// 10000 activations or 30 s.
func DefaultConfig() Config {
	return Config{Target: DefaultTarget, Mode: ModeNew, Concurrency: DefaultConcurrency, PerConn: DefaultPerConn,
		Major: DefaultMajor, Product: DefaultProduct, Count: DefaultCount, Duration: DefaultDuration, Timeout: DefaultTimeout}
}

func (c *Config) normalize(t *products.Table) error {
	if c.Target == "" {
		c.Target = DefaultTarget
	}
	switch c.Mode {
	case "":
		c.Mode = ModeNew
	case ModeNew, ModeKeepAlive:
	default:
		return fmt.Errorf("bench: mode %q: want %s or %s", c.Mode, ModeNew, ModeKeepAlive)
	}
	def := func(v *int, d, limit int, name string) error {
		if *v == 0 {
			*v = d
		}
		if *v < 0 || *v > limit {
			return fmt.Errorf("bench: %s %d out of range 1..%d", name, *v, limit)
		}
		return nil
	}
	if err := def(&c.Concurrency, DefaultConcurrency, MaxConcurrency, "concurrency"); err != nil {
		return err
	}
	if err := def(&c.PerConn, DefaultPerConn, MaxCount, "requests per connection"); err != nil {
		return err
	}
	if err := def(&c.Count, DefaultCount, MaxCount, "count"); err != nil {
		return err
	}
	c.Concurrency = min(c.Concurrency, c.Count)
	defDur := func(v *time.Duration, d, limit time.Duration, name string) error {
		if *v == 0 {
			*v = d
		}
		if *v < 0 || *v > limit {
			return fmt.Errorf("bench: %s %v out of range (0, %v]", name, *v, limit)
		}
		return nil
	}
	if err := defDur(&c.Duration, DefaultDuration, MaxDuration, "duration"); err != nil {
		return err
	}
	if err := defDur(&c.Timeout, DefaultTimeout, MaxTimeout, "timeout"); err != nil {
		return err
	}
	if c.Major == 0 {
		c.Major = DefaultMajor
	}
	if c.Major < 4 || c.Major > 6 {
		return fmt.Errorf("bench: protocol %d: want 4, 5 or 6", c.Major)
	}
	if c.Product < 0 || c.Product >= len(t.Products) {
		return fmt.Errorf("bench: no product number %d (1..%d)", c.Product+1, len(t.Products))
	}
	return nil
}

// CheckTarget refuses a target that is not host:port with a loopback host
// (127.0.0.0/8, ::1, localhost) unless allowRemote is set. Host names other
// than localhost are not resolved: they need allowRemote.
func CheckTarget(target string, allowRemote bool) error {
	host, port, err := net.SplitHostPort(target)
	if err != nil || port == "" {
		return fmt.Errorf("bench: target %q is not host:port", target)
	}
	if allowRemote || strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Unmap().IsLoopback() {
		return nil
	}
	return fmt.Errorf("bench: target %s is not a loopback address; load a remote host only with --allow-remote", target)
}

// buildBase fills the base request of product p as the client emulator
// does (CMID, time and workstation are set per activation or per worker).
func buildBase(t *products.Table, p int, major uint16) kms.BaseRequest {
	prod := &t.Products[p]
	it := &t.KMSItems[prod.KMS]
	return kms.BaseRequest{
		Version:       kms.Version{Major: major},
		LicenseStatus: 2,
		AppID:         t.Apps[it.App].ID,
		ActID:         prod.SKU,
		KMSID:         it.ID,
		NPolicy:       it.NPolicy,
	}
}

// setRandomCMID stores a version-4 UUID made from two random words.
func setRandomCMID(g *wire.GUID, a, b uint64) {
	binary.LittleEndian.PutUint64(g[:8], a)
	binary.LittleEndian.PutUint64(g[8:], b)
	g[7] = g[7]&0x0F | 0x40
	g[8] = g[8]&0x3F | 0x80
}

func newRNG() *rand.ChaCha8 {
	var seed [32]byte
	crand.Read(seed[:])
	return rand.NewChaCha8(seed)
}

// Stop reasons of a Report.
const (
	StoppedCount     = "count"
	StoppedDuration  = "duration"
	StoppedCancelled = "cancelled"
)

type runner struct {
	cfg      Config
	table    *products.Table
	ctx      context.Context
	deadline time.Time
	next     atomic.Int64
	expired  atomic.Bool
}

// more claims the next activation; false once Count, Duration or ctx ends
// the run.
func (r *runner) more() bool {
	if r.ctx.Err() != nil {
		return false
	}
	if !time.Now().Before(r.deadline) {
		r.expired.Store(true)
		return false
	}
	return r.next.Add(1) <= int64(r.cfg.Count)
}

// Run loads cfg.Target until cfg.Count activations are done, cfg.Duration
// has passed or ctx is cancelled, and reports. Activations in flight when
// the duration ends finish (each bounded by Timeout); cancelling ctx aborts
// them and they are not counted. An error means the configuration was
// refused and nothing was sent.
func Run(ctx context.Context, cfg Config) (Report, error) {
	t := products.Builtin()
	if err := cfg.normalize(t); err != nil {
		return Report{}, err
	}
	if err := CheckTarget(cfg.Target, cfg.AllowRemote); err != nil {
		return Report{}, err
	}
	if cfg.FixedRequest != nil {
		if _, ok := kms.PeekVersion(cfg.FixedRequest); !ok {
			return Report{}, errors.New("bench: fixed request too short")
		}
	}
	r := &runner{cfg: cfg, table: t, ctx: ctx}
	workers := make([]*worker, cfg.Concurrency)
	share := (cfg.Count + cfg.Concurrency - 1) / cfg.Concurrency
	for i := range workers {
		workers[i] = newWorker(r, min(share+share/4+16, cfg.Count))
	}
	stop := context.AfterFunc(ctx, func() {
		for _, w := range workers {
			w.abort()
		}
	})
	defer stop()

	start := time.Now()
	r.deadline = start.Add(cfg.Duration)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(w.run)
	}
	progressDone := make(chan struct{})
	var progressWG sync.WaitGroup
	if cfg.Progress != nil {
		progressWG.Go(func() { r.progress(workers, start, progressDone) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(progressDone)
	progressWG.Wait()

	rep := Report{Target: cfg.Target, Mode: cfg.Mode, Concurrency: cfg.Concurrency, Protocol: cfg.Major,
		Product: cfg.Product + 1, ProductName: t.Products[cfg.Product].Name, Fixed: cfg.FixedRequest != nil,
		Count: cfg.Count, Elapsed: elapsed, Errors: map[string]int{}}
	if cfg.Mode == ModeKeepAlive {
		rep.PerConn = cfg.PerConn
	}
	switch {
	case ctx.Err() != nil:
		rep.Stopped = StoppedCancelled
	case r.expired.Load():
		rep.Stopped = StoppedDuration
	default:
		rep.Stopped = StoppedCount
	}
	n := 0
	for _, w := range workers {
		n += len(w.lat)
	}
	lat := make([]time.Duration, 0, n)
	for _, w := range workers {
		lat = append(lat, w.lat...)
		rep.OK += len(w.lat)
		for k, v := range w.errs {
			rep.Errors[k] += v
			rep.Requests += v
		}
		w.lat = nil
	}
	rep.Requests += rep.OK
	if elapsed > 0 {
		rep.RatePerSec = float64(rep.OK) / elapsed.Seconds()
	}
	slices.Sort(lat)
	rep.P50, rep.P90, rep.P99 = percentile(lat, 0.50), percentile(lat, 0.90), percentile(lat, 0.99)
	if len(lat) > 0 {
		rep.Max = lat[len(lat)-1]
	}
	return rep, nil
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// progress writes one \r-updated line per second until done.
func (r *runner) progress(workers []*worker, start time.Time, done <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastOK int64
	last := start
	line := func(final bool) {
		var ok, errs int64
		for _, w := range workers {
			ok += w.nOK.Load()
			errs += w.nErr.Load()
		}
		now := time.Now()
		rate := float64(ok-lastOK) / now.Sub(last).Seconds()
		if final {
			rate = float64(ok) / now.Sub(start).Seconds()
		}
		lastOK, last = ok, now
		fmt.Fprintf(r.cfg.Progress, "\r%6.1fs  %d/%d done  %.0f/s  %d errors   ", now.Sub(start).Seconds(), ok+errs, r.cfg.Count, rate, errs)
		if final {
			fmt.Fprintln(r.cfg.Progress)
		}
	}
	for {
		select {
		case <-done:
			line(true)
			return
		case <-tick.C:
			line(false)
		}
	}
}

// newWorker prepares one worker; latCap pre-sizes its latency list.
func newWorker(r *runner, latCap int) *worker {
	w := &worker{r: r, rng: newRNG(), errs: map[string]int{}, lat: make([]time.Duration, 0, latCap)}
	w.dialer = net.Dialer{Timeout: r.cfg.Timeout}
	w.base = buildBase(r.table, r.cfg.Product, r.cfg.Major)
	w.base.SetWorkstationName(client.RandomDNSName(w.rng))
	w.in = make([]byte, 0, rpc.MaxPDU)
	w.sent = make([]byte, 0, 512)
	w.stub = make([]byte, 0, 512)
	w.pdu = make([]byte, 0, 512)
	w.bindPDU, w.alterPDU = bindPDUs()
	return w
}

func (w *worker) run() {
	keep := w.r.cfg.Mode == ModeKeepAlive
	for w.r.more() {
		var t0 time.Time
		var err error
		if keep {
			if w.c.nc != nil && w.c.calls >= w.r.cfg.PerConn {
				w.closeConn()
			}
			if w.c.nc == nil {
				t0 = time.Now()
				if err = w.connect(); err != nil {
					w.record(t0, err)
					continue
				}
			}
			t0 = time.Now()
			if err = w.activate(); err != nil && !answered(err) {
				w.closeConn()
			}
		} else {
			t0 = time.Now()
			err = w.connect()
			if err == nil {
				err = w.activate()
			}
			w.closeConn()
		}
		w.record(t0, err)
	}
	w.closeConn()
}

// record counts one activation. Errors caused by cancelling the run are
// not counted.
func (w *worker) record(t0 time.Time, err error) {
	if err == nil {
		w.lat = append(w.lat, time.Since(t0))
		w.nOK.Add(1)
		return
	}
	if w.r.ctx.Err() != nil {
		return
	}
	w.errs[errorKind(err)]++
	w.nErr.Add(1)
}
