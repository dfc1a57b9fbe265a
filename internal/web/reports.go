package web

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"kmsd/internal/store"
)

// Report windows, after Microsoft's KMS management pack reports.
var reportPeriods = []int{1, 7, 30, 90} // days

const (
	vmDays       = 14
	expiryWindow = 30 * 24 * time.Hour
	day          = 24 * time.Hour
	// expiringShown bounds the expiring list on the page (the API has all).
	expiringShown = 50
)

// Reports is the data of /reports and /api/reports.
type Reports struct {
	Generated time.Time       `json:"generated"`
	Periods   []int           `json:"periods_days"`
	Editions  []EditionCount  `json:"editions"`
	Totals    EditionCount    `json:"totals"`
	VMDays    []VMDay         `json:"vm_vs_physical_14d"`
	VM        int             `json:"vm_machines_14d"`
	Physical  int             `json:"physical_machines_14d"`
	Licence   []LicenceCount  `json:"licence_status"`
	Clients   int             `json:"clients"` // inventory size
	Expiring  []ExpiringEntry `json:"expiring_30d"`
	// ExpiringShown is how many of Expiring the page lists.
	ExpiringShown int   `json:"-"`
	VMChart       chart `json:"-"`
}

// EditionCount is one edition's successful activations (and distinct
// machines) per period of Periods.
type EditionCount struct {
	Product     string `json:"product"`
	KMSName     string `json:"kms_name,omitempty"`
	Activations []int  `json:"activations"`
	Machines    []int  `json:"machines"`
}

// VMDay counts the distinct machines of one day that asked the host.
type VMDay struct {
	Day      time.Time `json:"day"`
	VM       int       `json:"vm"`
	Physical int       `json:"physical"`
}

// LicenceCount is the number of inventory clients in one licence state.
type LicenceCount struct {
	Status uint32 `json:"status"`
	Name   string `json:"name"`
	Count  int    `json:"count"`
}

// ExpiringEntry is a machine whose renewal is due or whose licence state
// ends within 30 days.
type ExpiringEntry struct {
	CMID        string    `json:"cmid"`
	Workstation string    `json:"workstation"`
	Product     string    `json:"product"`
	LastSeen    time.Time `json:"last_seen"`
	Expires     time.Time `json:"expires"`
	Reason      string    `json:"reason"` // "renewal due", "renewal overdue", "licence state ends"
	Overdue     bool      `json:"overdue"`
}

func (s *Server) reportsPage(ctx context.Context, _ *http.Request, v *view) (any, error) {
	return s.reports(ctx, v)
}

// reports builds the reports from the last 90 days of records and the
// inventory.
func (s *Server) reports(ctx context.Context, v *view) (*Reports, error) {
	if s.Store == nil {
		return nil, ErrNoStore
	}
	now := s.now()
	recs, err := s.Store.Activations(ctx, store.ActivationFilter{Since: now.Add(-time.Duration(reportPeriods[len(reportPeriods)-1]) * day)})
	if err != nil {
		return nil, fmt.Errorf("activations: %w", err)
	}
	clients, err := s.Store.Clients(ctx, store.ClientFilter{})
	if err != nil {
		return nil, fmt.Errorf("clients: %w", err)
	}
	r := &Reports{Generated: now, Periods: reportPeriods, ExpiringShown: expiringShown}
	r.editions(recs, now)
	r.vmDays(recs, now, v)
	r.Clients = len(clients)
	r.licence(clients)
	r.expiring(clients, recs, now)
	return r, nil
}

func (r *Reports) editions(recs []store.Activation, now time.Time) {
	type acc struct {
		EditionCount
		seen []map[string]bool
	}
	byName := map[string]*acc{}
	np := len(reportPeriods)
	newAcc := func(product, kms string) *acc {
		a := &acc{EditionCount: EditionCount{Product: product, KMSName: kms, Activations: make([]int, np), Machines: make([]int, np)}}
		for range np {
			a.seen = append(a.seen, map[string]bool{})
		}
		return a
	}
	total := newAcc("all editions", "")
	for i := range recs {
		rec := &recs[i]
		if rec.HResult != 0 {
			continue
		}
		name := cmp.Or(rec.Product, rec.KMSName, "unknown product")
		a := byName[name]
		if a == nil {
			a = newAcc(name, rec.KMSName)
			byName[name] = a
		}
		age := now.Sub(rec.Received)
		for p, days := range reportPeriods {
			if age > time.Duration(days)*day {
				continue
			}
			for _, x := range []*acc{a, total} {
				x.Activations[p]++
				if rec.CMID != "" && !x.seen[p][rec.CMID] {
					x.seen[p][rec.CMID] = true
					x.Machines[p]++
				}
			}
		}
	}
	r.Editions = []EditionCount{}
	for _, a := range byName {
		r.Editions = append(r.Editions, a.EditionCount)
	}
	slices.SortFunc(r.Editions, func(a, b EditionCount) int {
		return cmp.Or(cmp.Compare(b.Activations[np-1], a.Activations[np-1]), strings.Compare(a.Product, b.Product))
	})
	r.Totals = total.EditionCount
}

// vmDays counts distinct machines per day of the display zone.
func (r *Reports) vmDays(recs []store.Activation, now time.Time, v *view) {
	ln := now.In(v.loc)
	today := time.Date(ln.Year(), ln.Month(), ln.Day(), 0, 0, 0, 0, v.loc)
	first := today.AddDate(0, 0, -(vmDays - 1))
	r.VMDays = make([]VMDay, vmDays)
	seen := make([]map[string]bool, vmDays)
	for i := range r.VMDays {
		r.VMDays[i].Day = first.AddDate(0, 0, i)
		seen[i] = map[string]bool{}
	}
	all := map[string]bool{}
	for i := range recs {
		rec := &recs[i]
		if rec.Received.Before(first) || rec.CMID == "" {
			continue
		}
		lr := rec.Received.In(v.loc)
		d := time.Date(lr.Year(), lr.Month(), lr.Day(), 0, 0, 0, 0, v.loc)
		idx := slices.IndexFunc(r.VMDays, func(x VMDay) bool { return x.Day.Equal(d) })
		if idx < 0 || seen[idx][rec.CMID] {
			continue
		}
		seen[idx][rec.CMID] = true
		if rec.VM {
			r.VMDays[idx].VM++
		} else {
			r.VMDays[idx].Physical++
		}
		if !all[rec.CMID] {
			all[rec.CMID] = true
			if rec.VM {
				r.VM++
			} else {
				r.Physical++
			}
		}
	}
	in := make([]chartInput, len(r.VMDays))
	for i, d := range r.VMDays {
		in[i] = chartInput{Values: []int{d.Physical, d.VM},
			Title: fmt.Sprintf("%s: %d physical, %d virtual", d.Day.Format("Mon Jan 2"), d.Physical, d.VM)}
		if (len(r.VMDays)-1-i)%3 == 0 {
			in[i].Tick = d.Day.Format("Jan 2")
		}
	}
	r.VMChart = newChart("Machines per day, physical and virtual, last 14 days", 170,
		[]chartSeries{{Class: "phys", Name: "physical"}, {Class: "vm", Name: "virtual machine"}}, in)
}

func (r *Reports) licence(clients []store.Client) {
	counts := map[uint32]int{}
	for i := range clients {
		counts[clients[i].LicenseStatus]++
	}
	r.Licence = []LicenceCount{}
	for st, n := range counts {
		r.Licence = append(r.Licence, LicenceCount{Status: st, Name: LicenseStatusName(st), Count: n})
	}
	slices.SortFunc(r.Licence, func(a, b LicenceCount) int { return cmp.Compare(a.Status, b.Status) })
}

// expiring lists machines whose renewal is due within 30 days (or
// overdue), or whose reported binding expiration (the minutes left in
// their licence state, from their newest request) ends within 30 days.
func (r *Reports) expiring(clients []store.Client, recs []store.Activation, now time.Time) {
	binding := map[string]time.Time{}
	for i := range recs { // newest first
		rec := &recs[i]
		if _, ok := binding[rec.CMID]; ok || rec.CMID == "" {
			continue
		}
		var t time.Time
		if rec.BindingExpiration > 0 {
			t = rec.Received.Add(time.Duration(rec.BindingExpiration) * time.Minute)
		}
		binding[rec.CMID] = t
	}
	r.Expiring = []ExpiringEntry{}
	limit := now.Add(expiryWindow)
	for i := range clients {
		c := &clients[i]
		e := ExpiringEntry{CMID: c.CMID, Workstation: c.Workstation, Product: c.Product, LastSeen: c.LastSeen}
		if !c.RenewalDue.IsZero() && !c.RenewalDue.After(limit) {
			e.Expires, e.Reason = c.RenewalDue, "renewal due"
		}
		if b := binding[c.CMID]; !b.IsZero() && !b.After(limit) && (e.Expires.IsZero() || b.Before(e.Expires)) {
			e.Expires, e.Reason = b, "licence state ends"
		}
		if e.Expires.IsZero() {
			continue
		}
		if e.Expires.Before(now) {
			e.Overdue = true
			if e.Reason == "renewal due" {
				e.Reason = "renewal overdue"
			} else {
				e.Reason = "licence state ended"
			}
		}
		r.Expiring = append(r.Expiring, e)
	}
	slices.SortFunc(r.Expiring, func(a, b ExpiringEntry) int {
		return cmp.Or(a.Expires.Compare(b.Expires), strings.Compare(a.CMID, b.CMID))
	})
}
