// Package web is kmsd's dashboard: server-rendered pages (overview,
// clients, activity, products, reports) over the activation store, the
// JSON API behind them, /metrics, /healthz and /readyz. Everything it
// serves is embedded; pages work without JavaScript.
package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"kmsd/internal/metrics"
	"kmsd/internal/products"
	"kmsd/internal/store"
)

// Server serves the dashboard. Set its fields, then call Handler.
type Server struct {
	Store   store.Store
	Table   *products.Table
	Metrics *metrics.Set // nil: /metrics answers 404
	// Health performs a real activation against the host's own listener;
	// nil reports healthy.
	Health func(ctx context.Context) error
	// Ready reports whether the host serves; nil reports ready.
	Ready func() bool
	// Auth, when set, is the password (HTTP basic auth, any user) or bearer
	// token every request except /healthz and /readyz must present.
	Auth string
	// HostAddr is the KMS host's address as clients should use it
	// (host:port) in the commands of the products page. An empty or
	// unspecified host is replaced by the host name the browser used.
	HostAddr string
	Now      func() time.Time // nil: time.Now
	// Local is the zone of the ?tz=local display option (nil: time.Local);
	// times are shown in UTC otherwise.
	Local  *time.Location
	Logger *slog.Logger // nil: discard

	healthMu  sync.Mutex
	healthAt  time.Time
	healthErr error

	activeMu sync.Mutex
	activeAt time.Time
	active   map[metrics.KMSKey]int
}

// ErrNoStore is the error of the pages that need a store when Store is nil.
var ErrNoStore = errors.New("web: no activation store configured")

// Timeouts of the probes and of the store queries behind a page.
const (
	healthTimeout = 5 * time.Second
	healthCache   = 2 * time.Second
	queryTimeout  = 15 * time.Second
)

// Handler returns the dashboard's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, p := range pages {
		mux.Handle("GET "+p.path, s.pageHandler(p))
		mux.Handle("GET /api"+p.apiPath(), s.apiHandler(p))
	}
	mux.Handle("GET /static/", http.FileServerFS(staticFS))
	mux.HandleFunc("GET /metrics", s.serveMetrics)
	mux.HandleFunc("GET /api/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such API endpoint"})
	})
	authed := s.requireAuth(mux)
	root := http.NewServeMux()
	root.HandleFunc("GET /healthz", s.serveHealth)
	root.HandleFunc("GET /readyz", s.serveReady)
	root.Handle("/", authed)
	return securityHeaders(root)
}

// securityHeaders sets the headers of every answer and allows only GET
// and HEAD: the dashboard changes nothing.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requireAuth checks the bearer token or the basic-auth password when
// Auth is set, comparing SHA-256 digests in constant time.
func (s *Server) requireAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Auth != "" && !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="kmsd", charset="UTF-8"`)
			http.Error(w, "authorization required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) authorized(r *http.Request) bool {
	var got string
	h := r.Header.Get("Authorization")
	if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		got = strings.TrimSpace(tok)
	} else if _, pw, ok := r.BasicAuth(); ok {
		got = pw
	} else {
		return false
	}
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(s.Auth))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if s.Metrics == nil {
		http.NotFound(w, r)
		return
	}
	s.Metrics.ServeHTTP(w, r)
}

// serveHealth runs the health check, at most once per healthCache; callers
// arriving meanwhile share the answer.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.checkHealth(r.Context()); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("unhealthy: " + err.Error() + "\n"))
		return
	}
	w.Write([]byte("ok\n"))
}

func (s *Server) checkHealth(ctx context.Context) error {
	if s.Health == nil {
		return nil
	}
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	now := time.Now()
	if !s.healthAt.IsZero() && now.Sub(s.healthAt) < healthCache {
		return s.healthErr
	}
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	err := s.Health(ctx)
	if ctx.Err() != nil && err == nil {
		err = ctx.Err()
	}
	if errors.Is(err, context.Canceled) {
		return err // the caller went away: do not cache
	}
	s.healthAt, s.healthErr = time.Now(), err
	return err
}

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.Ready != nil && !s.Ready() {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("not ready\n"))
		return
	}
	w.Write([]byte("ready\n"))
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// activeCache is how long ActiveClientCounts reuses its answer.
const activeCache = time.Minute

// ActiveClientCounts is the active clients (30 days) per KMS ID seen, for
// metrics.Set.WatchActiveClients. It queries the store at most once a
// minute and keeps the last answer when a query fails.
func (s *Server) ActiveClientCounts() map[metrics.KMSKey]int {
	s.activeMu.Lock()
	defer s.activeMu.Unlock()
	now := s.now()
	if s.activeAt.IsZero() || now.Sub(s.activeAt) >= activeCache || now.Before(s.activeAt) {
		ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
		defer cancel()
		if m, err := s.activeCounts(ctx, now); err != nil {
			s.logger().Warn("counting active clients failed", "err", err)
		} else {
			s.active, s.activeAt = m, now
		}
	}
	return s.active
}

func (s *Server) activeCounts(ctx context.Context, now time.Time) (map[metrics.KMSKey]int, error) {
	if s.Store == nil {
		return nil, ErrNoStore
	}
	since := now.Add(-activeWindow)
	clients, err := s.Store.Clients(ctx, store.ClientFilter{SeenSince: since})
	if err != nil {
		return nil, err
	}
	m := map[metrics.KMSKey]int{}
	done := map[string]bool{}
	for i := range clients {
		id := clients[i].KMSID
		if id == "" || done[id] {
			continue
		}
		done[id] = true
		n, err := s.Store.ActiveClients(ctx, id, since)
		if err != nil {
			return nil, err
		}
		m[metrics.KMSKey{ID: id, Name: s.kmsInfo(id).Name}] = n
	}
	return m, nil
}
