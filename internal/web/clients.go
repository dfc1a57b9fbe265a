package web

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"kmsd/internal/store"
)

// Page sizes of the list pages.
const (
	defaultPerPage = 50
	maxPerPage     = 500
)

// ClientQuery is what the clients page was asked for.
type ClientQuery struct {
	Search  string `json:"q,omitempty"`
	Product string `json:"product,omitempty"`
	Status  string `json:"status,omitempty"` // see clientStatuses
	Due     string `json:"due,omitempty"`    // "overdue", "7d", "30d"
	Sort    string `json:"sort"`
	Desc    bool   `json:"desc"`
	Page    int    `json:"page"` // 1-based
	PerPage int    `json:"per_page"`
}

// Clients is the data of /clients and /api/clients.
type Clients struct {
	Query    ClientQuery  `json:"query"`
	Total    int          `json:"total"` // rows matching, all pages
	Pages    int          `json:"pages"`
	Clients  []ClientRow  `json:"clients"`
	Products []string     `json:"-"` // for the product filter
	Columns  []column     `json:"-"`
	Statuses [][2]string  `json:"-"`
	Dues     [][2]string  `json:"-"`
	Prev     string       `json:"-"`
	Next     string       `json:"-"`
	Reset    string       `json:"-"`
	Hidden   [][2]string  `json:"-"` // form fields that keep the sort
	Summary  clientCounts `json:"summary"`
}

type clientCounts struct {
	All     int `json:"all"`
	Due30d  int `json:"renewal_due_30d"`
	Overdue int `json:"overdue"`
	Refused int `json:"refused"`
}

// ClientRow is one inventory row as shown.
type ClientRow struct {
	CMID          string    `json:"cmid"`
	Workstation   string    `json:"workstation"`
	Address       string    `json:"address"`
	Product       string    `json:"product"`
	SKUID         string    `json:"sku_id"`
	KMSID         string    `json:"kms_id"`
	KMSName       string    `json:"kms_name"`
	LicenseStatus uint32    `json:"license_status"`
	LicenseText   string    `json:"license_status_text"`
	VM            bool      `json:"vm"`
	FirstSeen     time.Time `json:"first_seen"`
	LastSeen      time.Time `json:"last_seen"`
	RenewalDue    time.Time `json:"renewal_due"`
	Overdue       bool      `json:"overdue"`
	Result        Result    `json:"last_result"`
	Activations   int       `json:"activations"`
	ClockSkew     float64   `json:"clock_skew_seconds"`
	Cloned        bool      `json:"cloned"`
	Names         []string  `json:"names"`
	Addresses     []string  `json:"addresses"`
}

type column struct {
	Key, Label, URL, Class string
	Active, Desc           bool
}

// clientColumns are the sortable columns, with their default direction.
// Columns with an empty label sort (?sort=) but have no header.
var clientColumns = []struct {
	key, label, class string
	desc              bool
}{
	{"workstation", "Workstation", "", false},
	{"cmid", "", "", false},
	{"product", "Product", "", false},
	{"status", "Licence", "opt", false},
	{"result", "Last result", "", false},
	{"address", "Address", "opt", false},
	{"first_seen", "", "", true},
	{"last_seen", "Last seen", "", true},
	{"renewal_due", "Renewal due", "", false},
	{"activations", "Requests", "opt num", true},
}

var clientStatuses = [][2]string{
	{"", "any status"}, {"activated", "last request activated"}, {"refused", "last request refused"},
	{"licensed", "licensed"}, {"grace", "in a grace period"}, {"unlicensed", "unlicensed"},
	{"notification", "notification"}, {"vm", "virtual machine"}, {"physical", "physical machine"},
	{"cloned", "cloned (several names)"},
}

var clientDues = [][2]string{{"", "any renewal date"}, {"overdue", "renewal overdue"}, {"7d", "due within 7 days"}, {"30d", "due within 30 days"}}

func parseClientQuery(q url.Values) ClientQuery {
	cq := ClientQuery{Search: strings.TrimSpace(q.Get("q")), Product: q.Get("product"), Status: q.Get("status"),
		Due: q.Get("due"), Sort: q.Get("sort"), Page: atoiDefault(q.Get("page"), 1), PerPage: atoiDefault(q.Get("per"), defaultPerPage)}
	cq.Page = max(cq.Page, 1)
	cq.PerPage = min(max(cq.PerPage, 1), maxPerPage)
	known := false
	for _, c := range clientColumns {
		if c.key == cq.Sort {
			known = true
			cq.Desc = c.desc
		}
	}
	if !known {
		cq.Sort, cq.Desc = "last_seen", true
	}
	switch q.Get("dir") {
	case "asc":
		cq.Desc = false
	case "desc":
		cq.Desc = true
	}
	return cq
}

func atoiDefault(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}

func (s *Server) clientsPage(ctx context.Context, r *http.Request, v *view) (any, error) {
	return s.clients(ctx, parseClientQuery(r.URL.Query()), v)
}

// clients lists the inventory: the store does the text search, the
// filters, sorting and paging happen here over the matching rows.
func (s *Server) clients(ctx context.Context, q ClientQuery, v *view) (*Clients, error) {
	if s.Store == nil {
		return nil, ErrNoStore
	}
	now := s.now()
	all, err := s.Store.Clients(ctx, store.ClientFilter{Search: q.Search})
	if err != nil {
		return nil, fmt.Errorf("clients: %w", err)
	}
	out := &Clients{Query: q, Clients: []ClientRow{}, Statuses: clientStatuses, Dues: clientDues}
	seen := map[string]bool{}
	var rows []ClientRow
	for i := range all {
		row := s.clientRow(&all[i], now)
		if row.Product != "" && !seen[row.Product] {
			seen[row.Product] = true
			out.Products = append(out.Products, row.Product)
		}
		if q.matches(&row, now) {
			rows = append(rows, row)
			out.Summary.add(&row, now)
		}
	}
	slices.Sort(out.Products)
	sortClients(rows, q.Sort, q.Desc)
	out.Total = len(rows)
	out.Pages = max(1, (len(rows)+q.PerPage-1)/q.PerPage)
	out.Query.Page = min(q.Page, out.Pages)
	lo := (out.Query.Page - 1) * q.PerPage
	out.Clients = append(out.Clients, rows[lo:min(lo+q.PerPage, len(rows))]...)
	out.links(v)
	return out, nil
}

func (c *clientCounts) add(r *ClientRow, now time.Time) {
	c.All++
	if r.Overdue {
		c.Overdue++
	} else if !r.RenewalDue.IsZero() && r.RenewalDue.Sub(now) <= 30*24*time.Hour {
		c.Due30d++
	}
	if r.Result.HResult != 0 {
		c.Refused++
	}
}

func (s *Server) clientRow(c *store.Client, now time.Time) ClientRow {
	info := s.kmsInfo(c.KMSID)
	return ClientRow{CMID: c.CMID, Workstation: c.Workstation, Address: c.Peer, Product: c.Product, SKUID: c.SKUID,
		KMSID: c.KMSID, KMSName: info.Name, LicenseStatus: c.LicenseStatus, LicenseText: LicenseStatusName(c.LicenseStatus),
		VM: c.VM, FirstSeen: c.FirstSeen, LastSeen: c.LastSeen, RenewalDue: c.RenewalDue,
		Overdue: !c.RenewalDue.IsZero() && c.RenewalDue.Before(now), Result: DecodeResult(c.LastHResult),
		Activations: c.Activations, ClockSkew: c.ClockSkew.Seconds(), Cloned: c.Cloned(),
		Names: nonNil(c.Names), Addresses: nonNil(c.Addresses)}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (q *ClientQuery) matches(r *ClientRow, now time.Time) bool {
	if q.Product != "" && r.Product != q.Product {
		return false
	}
	if !statusMatches(q.Status, r) {
		return false
	}
	switch q.Due {
	case "overdue":
		return r.Overdue
	case "7d", "30d":
		days := map[string]time.Duration{"7d": 7, "30d": 30}[q.Due]
		return !r.RenewalDue.IsZero() && r.RenewalDue.Sub(now) <= days*24*time.Hour
	}
	return true
}

func statusMatches(status string, r *ClientRow) bool {
	switch status {
	case "activated":
		return r.Result.HResult == 0
	case "refused":
		return r.Result.HResult != 0
	case "licensed":
		return r.LicenseStatus == 1
	case "grace":
		return r.LicenseStatus >= 2 && r.LicenseStatus <= 6 && r.LicenseStatus != 5
	case "unlicensed":
		return r.LicenseStatus == 0
	case "notification":
		return r.LicenseStatus == 5
	case "vm":
		return r.VM
	case "physical":
		return !r.VM
	case "cloned":
		return r.Cloned
	}
	return true
}

func sortClients(rows []ClientRow, key string, desc bool) {
	slices.SortStableFunc(rows, func(a, b ClientRow) int {
		c := compareClients(&a, &b, key)
		if desc {
			c = -c
		}
		return cmp.Or(c, strings.Compare(a.CMID, b.CMID))
	})
}

func compareClients(a, b *ClientRow, key string) int {
	switch key {
	case "workstation":
		return strings.Compare(strings.ToLower(a.Workstation), strings.ToLower(b.Workstation))
	case "cmid":
		return strings.Compare(a.CMID, b.CMID)
	case "product":
		return strings.Compare(a.Product, b.Product)
	case "status":
		return cmp.Compare(a.LicenseStatus, b.LicenseStatus)
	case "result":
		return cmp.Compare(a.Result.HResult, b.Result.HResult)
	case "address":
		return strings.Compare(a.Address, b.Address)
	case "first_seen":
		return a.FirstSeen.Compare(b.FirstSeen)
	case "renewal_due": // no renewal date sorts after every date
		return cmp.Or(cmp.Compare(boolInt(a.RenewalDue.IsZero()), boolInt(b.RenewalDue.IsZero())), a.RenewalDue.Compare(b.RenewalDue))
	case "activations":
		return cmp.Compare(a.Activations, b.Activations)
	}
	return a.LastSeen.Compare(b.LastSeen)
}

// links fills the sort headers, the pager and the form's hidden fields.
func (c *Clients) links(v *view) {
	q := c.Query
	base := func(kv ...string) string {
		all := []string{"q", q.Search, "product", q.Product, "status", q.Status, "due", q.Due,
			"sort", q.Sort, "dir", dir(q.Desc)}
		if q.PerPage != defaultPerPage {
			all = append(all, "per", strconv.Itoa(q.PerPage))
		}
		return v.Link("/clients", append(all, kv...)...)
	}
	for _, col := range clientColumns {
		if col.label == "" {
			continue
		}
		d := col.desc
		if col.key == q.Sort {
			d = !q.Desc
		}
		c.Columns = append(c.Columns, column{Key: col.key, Label: col.label, Class: col.class,
			Active: col.key == q.Sort, Desc: q.Desc, URL: base("sort", col.key, "dir", dir(d), "page", "")})
	}
	if q.Page > 1 {
		c.Prev = base("page", strconv.Itoa(q.Page-1))
	}
	if q.Page < c.Pages {
		c.Next = base("page", strconv.Itoa(q.Page+1))
	}
	c.Reset = v.Link("/clients")
	c.Hidden = [][2]string{{"sort", q.Sort}, {"dir", dir(q.Desc)}}
	if v.Local {
		c.Hidden = append(c.Hidden, [2]string{"tz", "local"})
	}
}

func dir(desc bool) string {
	if desc {
		return "desc"
	}
	return "asc"
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
