package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

// staticFS holds static/style.css, served under /static/.
//
//go:embed static
var staticFS embed.FS

//go:embed copy.js
var copyScript string

// scriptHash allows the one inline script in the Content-Security-Policy.
var scriptHash = func() string {
	h := sha256.Sum256([]byte(copyScript))
	return "'sha256-" + base64.StdEncoding.EncodeToString(h[:]) + "'"
}()

var csp = "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src " + scriptHash +
	"; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// page is one dashboard page and its JSON twin under /api.
type page struct {
	name  string // template file and nav key
	path  string
	title string
	build func(s *Server, ctx context.Context, r *http.Request, v *view) (any, error)
}

func (p page) apiPath() string {
	if p.path == "/{$}" {
		return "/overview"
	}
	return p.path
}

var pages = []page{
	{"overview", "/{$}", "Overview", (*Server).overviewPage},
	{"clients", "/clients", "Clients", (*Server).clientsPage},
	{"activity", "/activity", "Activity", (*Server).activityPage},
	{"products", "/products", "Products", (*Server).productsPage},
	{"reports", "/reports", "Reports", (*Server).reportsPage},
}

// templates are parsed on first use, not at start-up: parsing them cost
// every kmsd process 3 ms and 450 KB, dashboard or not.
var templates = sync.OnceValue(func() map[string]*template.Template {
	m := map[string]*template.Template{}
	for _, p := range append(pages, page{name: "error"}) {
		m[p.name] = template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+p.name+".html"))
	}
	return m
})

var funcs = template.FuncMap{
	"hex": func(v uint32) string { return fmt.Sprintf("0x%08X", v) },
	"pct": func(a, b int) int {
		if b <= 0 {
			return 0
		}
		return min(100, a*100/b)
	},
	"int": func(v uint32) int { return int(v) },
}

// view is what every page template receives: the page's data plus the
// display settings of the request.
type view struct {
	Title  string
	Nav    string
	Local  bool   // times shown in the Local zone
	Zone   string // name of the display zone
	Now    time.Time
	Data   any
	Error  string
	Script template.JS
	loc    *time.Location
	path   string
	query  url.Values
}

func (s *Server) newView(r *http.Request, p page) *view {
	v := &view{Title: p.title, Nav: p.name, Now: s.now(), loc: time.UTC, Zone: "UTC",
		path: r.URL.Path, query: r.URL.Query(), Script: template.JS(copyScript)}
	if r.URL.Query().Get("tz") == "local" {
		v.Local, v.loc = true, s.Local
		if v.loc == nil {
			v.loc = time.Local
		}
		v.Zone = v.loc.String()
		if name, _ := v.Now.In(v.loc).Zone(); name != "" && name != v.Zone {
			v.Zone += " (" + name + ")"
		}
	}
	return v
}

// Time formats t in the display zone; zero shows as a dash.
func (v *view) Time(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(v.loc).Format("2006-01-02 15:04:05")
}

// Short formats t without the year and seconds.
func (v *view) Short(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(v.loc).Format("Jan 2 15:04")
}

// ISO is t for a datetime attribute.
func (v *view) ISO(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// Ago describes t relative to now: "5 min ago", "in 3 days".
func (v *view) Ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := v.Now.Sub(t)
	suffix := " ago"
	if d < 0 {
		d, suffix = -d, ""
	}
	var s string
	switch {
	case d < time.Minute:
		if suffix == "" {
			return "now"
		}
		return "just now"
	case d < time.Hour:
		s = strconv.Itoa(int(d/time.Minute)) + " min"
	case d < 48*time.Hour:
		s = strconv.Itoa(int(d/time.Hour)) + " h"
	default:
		s = strconv.Itoa(int(d/(24*time.Hour))) + " days"
	}
	if suffix == "" {
		return "in " + s
	}
	return s + suffix
}

// Dur is the time between t and now, without direction: "5 min", "3 days".
func (v *view) Dur(t time.Time) string {
	d := v.Now.Sub(t)
	if d < 0 {
		d = -d
	}
	switch {
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " min"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + " h"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + " days"
}

// Link is path with the display zone kept and kv (name, value pairs) set;
// empty values are left out.
func (v *view) Link(path string, kv ...string) string {
	q := url.Values{}
	if v.Local {
		q.Set("tz", "local")
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

// TZLink is the current page with the display zone switched.
func (v *view) TZLink(local bool) string {
	q := url.Values{}
	for k, vs := range v.query {
		q[k] = vs
	}
	q.Del("tz")
	if local {
		q.Set("tz", "local")
	}
	if len(q) == 0 {
		return v.path
	}
	return v.path + "?" + q.Encode()
}

// Query returns a query parameter of the request.
func (v *view) Query(name string) string { return v.query.Get(name) }

func (s *Server) pageHandler(p page) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := s.newView(r, p)
		ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
		defer cancel()
		data, err := p.build(s, ctx, r, v)
		status, tmpl := http.StatusOK, templates()[p.name]
		if err != nil {
			s.logger().Warn("dashboard page failed", "page", p.name, "err", err)
			status, tmpl, v.Error = http.StatusInternalServerError, templates()["error"], err.Error()
		}
		v.Data = data
		var buf bytes.Buffer
		if err := tmpl.ExecuteTemplate(&buf, "layout", v); err != nil {
			s.logger().Error("dashboard template failed", "page", p.name, "err", err)
			http.Error(w, "template error", http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", csp)
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		w.Write(buf.Bytes())
	})
}

func (s *Server) apiHandler(p page) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := s.newView(r, p)
		ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
		defer cancel()
		data, err := p.build(s, ctx, r, v)
		if err != nil {
			s.logger().Warn("dashboard API failed", "page", p.name, "err", err)
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, data)
	})
}

// At is t as a <time> element in the display zone to the minute, with
// the time to the second and the relative time as its tooltip.
func (v *view) At(t time.Time) template.HTML {
	if t.IsZero() {
		return "—"
	}
	title := v.Time(t) + " " + v.zoneAbbr(t) + " · " + v.Ago(t)
	return template.HTML(`<time datetime="` + v.ISO(t) + `" title="` + template.HTMLEscapeString(title) + `">` +
		template.HTMLEscapeString(t.In(v.loc).Format("2006-01-02 15:04")) + `</time>`)
}

func (v *view) zoneAbbr(t time.Time) string {
	name, _ := t.In(v.loc).Zone()
	return name
}

// APILink is the JSON twin of the current page, with the same query.
func (v *view) APILink() string {
	q := url.Values{}
	for k, vs := range v.query {
		if k != "tz" {
			q[k] = vs
		}
	}
	p := "/api/" + v.Nav
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	return p
}
