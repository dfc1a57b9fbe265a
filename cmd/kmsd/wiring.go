package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"kmsd/internal/config"
	"kmsd/internal/kms"
	"kmsd/internal/metrics"
	"kmsd/internal/platform"
	"kmsd/internal/products"
	"kmsd/internal/server"
	"kmsd/internal/store"
	"kmsd/internal/store/memory"
	"kmsd/internal/store/postgres"
	"kmsd/internal/web"
	"kmsd/internal/wire"
)

// records owns the parts around the host: the store and its queue, the
// metrics, the retention loop and the dashboard.
type records struct {
	store    store.Store
	queue    *store.Queue
	metrics  *metrics.Set
	stop     chan struct{}
	webClose func(context.Context) error
	logger   *slog.Logger
}

// recorders fans one event out to several recorders. The dashboard's own
// health-check activations (a fixed CMID) are not recorded, so they never
// show up in counts, records or metrics.
type recorders []server.Recorder

func (rs recorders) Record(e *server.Event) {
	if e.Decision.Decrypted && e.Decision.Request.Base.CMID == healthCMID {
		return
	}
	for _, r := range rs {
		r.Record(e)
	}
}

// startRecords opens the activation store (falling back to memory with a
// warning when the database cannot be opened), starts its queue and the
// metrics, and installs them as the server's recorder.
func startRecords(cfg *config.Server, asVlmcsd bool, t *products.Table, srv *server.Server, logger *slog.Logger) (*records, error) {
	r := &records{metrics: metrics.New(version, t), stop: make(chan struct{}), logger: logger}
	dsn := cfg.DB
	if dsn == "" && asVlmcsd {
		dsn = "memory" // a vlmcsd drop-in writes no files unless asked
	}
	switch dsn {
	case "none":
		srv.Recorder = recorders{r.metrics}
		r.metrics.WatchServer(&srv.Stats)
		return r, nil
	default:
		st, err := openStore(dsn)
		if err != nil && isPostgres(dsn) {
			// The host starts and answers anyway; records wait in the
			// queue until the database can be reached.
			logger.Error("activation database unavailable; the host answers and keeps retrying",
				"db", describeDB(dsn), "err", err)
			st = newLazyStore(func(ctx context.Context) (store.Store, error) { return openStore(dsn) }, describeDB(dsn), logger)
			err = nil
		}
		if err != nil {
			if cfg.DB != "" {
				return nil, fmt.Errorf("--db %s: %w", describeDB(dsn), err)
			}
			logger.Warn("cannot open the activation database; keeping records in memory", "path", dbPath(dsn), "err", err)
			st, dsn = memory.New(0), "memory"
		}
		r.store = st
	}
	if dsn != "memory" && !isPostgres(dsn) && (cfg.User != "" || cfg.Group != "") {
		// The file is opened as root; hand it (and its directory, when it
		// is kmsd's own) to the user -u/-g will switch to.
		path := dbPath(dsn)
		paths := []string{path, path + "-wal", path + "-shm"}
		if cfg.DB == "" {
			paths = append(paths, filepath.Dir(path))
		}
		if err := platform.ChownTo(cfg.User, cfg.Group, paths...); err != nil {
			logger.Warn("cannot hand the database to the -u/-g user", "err", err)
		}
	}
	logger.Info("activation records", "db", describeDB(dsn), "retention", cfg.Retention.String())
	r.queue = store.NewQueue(r.store, 0, 0, 0, logger)
	host, _ := os.Hostname()
	srv.Recorder = recorders{r.metrics, newStoreRecorder(r.queue, t, host, func() kms.Policy { return srv.CurrentHost().Policy })}
	r.metrics.WatchServer(&srv.Stats)
	r.metrics.WatchStore(r.queue.Depth, r.queue.Dropped, r.queue.Errors)
	go r.prune(cfg.Retention)
	return r, nil
}

// describeDB names the database for messages, without its password.
func describeDB(dsn string) string {
	switch {
	case dsn == "memory":
		return "memory"
	case isPostgres(dsn):
		return postgres.Redact(dsn)
	}
	return "sqlite:" + dbPath(dsn)
}

func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// prune removes records past the retention once at start and then hourly.
func (r *records) prune(retention time.Duration) {
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if n, err := r.store.Prune(ctx, time.Now().Add(-retention)); err != nil {
			r.logger.Warn("pruning old activation records failed", "err", err)
		} else if n > 0 {
			r.logger.Info("pruned old activation records", "records", n)
		}
		cancel()
		select {
		case <-r.stop:
			return
		case <-tick.C:
		}
	}
}

// startWeb serves the dashboard when --http is given.
func (r *records) startWeb(cfg *config.Server, t *products.Table, srv *server.Server, ls []net.Listener, logger *slog.Logger) error {
	if cfg.HTTP == "" {
		return nil
	}
	auth := cfg.HTTPAuth
	if auth == "" {
		auth = os.Getenv("KMSD_HTTP_AUTH")
	}
	hostAddr := ls[0].Addr().String()
	ws := &web.Server{Store: r.store, Table: t, Metrics: r.metrics, Auth: auth, HostAddr: hostAddr,
		Health: healthCheck(hostAddr), Logger: logger}
	if r.store == nil {
		ws.Store = memory.New(1)
	}
	watchForDashboard(r.metrics, ws, srv)
	closeFn, err := startWeb(cfg.HTTP, auth, ws, logger)
	if err != nil {
		return err
	}
	r.webClose = closeFn
	return nil
}

// close stops the dashboard and flushes the queue (SIGTERM loses nothing).
func (r *records) close() {
	close(r.stop)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if r.webClose != nil {
		r.webClose(ctx)
	}
	if r.queue != nil {
		if err := r.queue.Close(ctx); err != nil {
			r.logger.Error("flushing activation records", "err", err)
		}
	} else if r.store != nil {
		r.store.Close()
	}
}

// seedClients fills the host's client lists (-M1) from the inventory: every
// CMID activated within the lists' expiry counts again, so counts survive
// restarts and reloads.
func seedClients(h *kms.Host, st store.Store, t *products.Table, logger *slog.Logger) {
	if h.Clients == nil || st == nil {
		return
	}
	n, err := seedSince(h, st, t, time.Now().Add(-h.Clients.Expiry))
	if err != nil {
		logger.Warn("client counts start without the stored inventory", "err", err)
		return
	}
	if n > 0 {
		logger.Info("client counts include stored clients", "clients", n)
	}
}

// seedSince adds the clients the inventory saw activated since since to
// the host's client lists and returns how many it read.
func seedSince(h *kms.Host, st store.Store, t *products.Table, since time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := st.Clients(ctx, store.ClientFilter{SeenSince: since})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range cs {
		if c.LastHResult != 0 {
			continue
		}
		cmid, err1 := wire.ParseGUID(c.CMID)
		kmsID, err2 := wire.ParseGUID(c.KMSID)
		if err1 != nil || err2 != nil {
			continue
		}
		app := 0
		if i := t.KMSByID(kmsID); i >= 0 {
			app = t.KMSItems[i].App
		}
		h.Clients.Seed(app, cmid, c.LastSeen)
		n++
	}
	return n, nil
}

// syncCounts makes -M1 counts span the hosts sharing a database: every
// interval it adds the clients the shared inventory saw since the last
// round (with a margin for records still queued on other hosts) to the
// running host's lists. Failures are logged once until a round succeeds.
func (r *records) syncCounts(srv *server.Server, interval time.Duration) {
	if interval <= 0 || r.store == nil {
		return
	}
	go func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		last, failing := time.Now(), false
		for {
			select {
			case <-r.stop:
				return
			case <-tick.C:
			}
			h := srv.CurrentHost()
			if h.Clients == nil {
				continue
			}
			now := time.Now()
			// Other hosts write in batches up to a second late; a CMID
			// seen twice is counted once.
			if _, err := seedSince(h, r.store, h.Table, last.Add(-interval-5*time.Second)); err != nil {
				if !failing {
					r.logger.Warn("client counts: cannot read the shared inventory; retrying", "err", err)
				}
				failing = true
				continue
			}
			if failing {
				r.logger.Info("client counts: shared inventory readable again")
			}
			last, failing = now, false
		}
	}()
}
