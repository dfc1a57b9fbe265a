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

// Overview windows and thresholds.
const (
	activeWindow = 30 * 24 * time.Hour // active clients, as a KMS host counts them
	chartHours   = 48
	quietAfter   = 8 * time.Hour // "no activity" warning
)

// Overview is the data of / and /api/overview.
type Overview struct {
	Generated      time.Time     `json:"generated"`
	Since          time.Time     `json:"since"` // start of the hourly window
	Activations48h int           `json:"activations_48h"`
	Refused48h     int           `json:"refused_48h"`
	ActiveClients  int           `json:"active_clients_30d"` // sum over KMS IDs
	LastActivity   time.Time     `json:"last_activity"`
	Cloned         int           `json:"cloned_cmids"`
	Warnings       []string      `json:"warnings"`
	Hourly         []HourBucket  `json:"hourly"`
	KMS            []KMSOverview `json:"kms"`
	Chart          chart         `json:"-"`
}

// HourBucket counts the requests of one hour.
type HourBucket struct {
	Start     time.Time `json:"start"`
	Activated int       `json:"activated"`
	Refused   int       `json:"refused"`
}

// KMSOverview is the state of one KMS ID seen.
type KMSOverview struct {
	KMSID          string       `json:"kms_id"`
	Name           string       `json:"name"`
	Application    string       `json:"application,omitempty"`
	Threshold      uint32       `json:"threshold"`          // N policy
	ActiveClients  int          `json:"active_clients_30d"` // distinct CMIDs
	Activations48h int          `json:"activations_48h"`
	Refused48h     int          `json:"refused_48h"`
	LastActivity   time.Time    `json:"last_activity"`
	Warnings       []string     `json:"warnings"`
	Hourly         []HourBucket `json:"hourly"`
	Chart          chart        `json:"-"`
}

// BelowThreshold reports whether fewer clients are active than the
// N policy requires.
func (k *KMSOverview) BelowThreshold() bool { return int(k.Threshold) > k.ActiveClients }

func (s *Server) overviewPage(ctx context.Context, _ *http.Request, v *view) (any, error) {
	return s.overview(ctx, v)
}

// overview gathers the overview; v sets the display zone of the chart
// labels.
func (s *Server) overview(ctx context.Context, v *view) (*Overview, error) {
	if s.Store == nil {
		return nil, ErrNoStore
	}
	now := s.now()
	start := now.Truncate(time.Hour).Add(-(chartHours - 1) * time.Hour)
	recs, err := s.Store.Activations(ctx, store.ActivationFilter{Since: start})
	if err != nil {
		return nil, fmt.Errorf("activations: %w", err)
	}
	clients, err := s.Store.Clients(ctx, store.ClientFilter{SeenSince: now.Add(-store.DefaultRetention)})
	if err != nil {
		return nil, fmt.Errorf("clients: %w", err)
	}
	o := &Overview{Generated: now, Since: start, Hourly: newHours(start)}
	byID := map[string]*KMSOverview{}
	get := func(id string) *KMSOverview {
		k := byID[id]
		if k == nil {
			info := s.kmsInfo(id)
			k = &KMSOverview{KMSID: id, Name: info.Name, Application: info.App, Threshold: info.NPolicy,
				Hourly: newHours(start), Warnings: []string{}}
			byID[id] = k
		}
		return k
	}
	for i := range clients {
		c := &clients[i]
		if c.Cloned() {
			o.Cloned++
		}
		if c.KMSID == "" {
			continue
		}
		k := get(c.KMSID)
		k.LastActivity = later(k.LastActivity, c.LastSeen)
	}
	for i := range recs {
		r := &recs[i]
		o.LastActivity = later(o.LastActivity, r.Received)
		countHour(o.Hourly, start, r)
		countReq(&o.Activations48h, &o.Refused48h, r.HResult)
		if r.KMSID == "" {
			continue
		}
		k := get(r.KMSID)
		k.LastActivity = later(k.LastActivity, r.Received)
		countHour(k.Hourly, start, r)
		countReq(&k.Activations48h, &k.Refused48h, r.HResult)
		if !s.kmsInfo(r.KMSID).Known {
			k.Threshold = max(k.Threshold, r.NPolicy)
		}
	}
	for _, c := range clients {
		o.LastActivity = later(o.LastActivity, c.LastSeen)
	}
	for id, k := range byID {
		n, err := s.Store.ActiveClients(ctx, id, now.Add(-activeWindow))
		if err != nil {
			return nil, fmt.Errorf("active clients of %s: %w", id, err)
		}
		k.ActiveClients = n
		o.ActiveClients += n
		k.warn(now)
		k.Chart = hourChart(v, k.Name+": requests per hour, last 48 hours", 96, k.Hourly, 12)
		o.KMS = append(o.KMS, *k)
	}
	slices.SortFunc(o.KMS, func(a, b KMSOverview) int {
		return cmp.Or(cmp.Compare(b.ActiveClients, a.ActiveClients), b.LastActivity.Compare(a.LastActivity),
			strings.Compare(a.Name, b.Name), strings.Compare(a.KMSID, b.KMSID))
	})
	o.Warnings = o.hostWarnings(now)
	o.Chart = hourChart(v, "All requests per hour, last 48 hours", 170, o.Hourly, 6)
	return o, nil
}

func (k *KMSOverview) warn(now time.Time) {
	if k.BelowThreshold() {
		k.Warnings = append(k.Warnings, fmt.Sprintf("count below threshold: %d of %d active clients in 30 days",
			k.ActiveClients, k.Threshold))
	}
	if k.LastActivity.IsZero() || now.Sub(k.LastActivity) >= quietAfter {
		k.Warnings = append(k.Warnings, fmt.Sprintf("no activity for %s", quietFor(now, k.LastActivity)))
	}
	if k.Refused48h > 0 {
		k.Warnings = append(k.Warnings, fmt.Sprintf("%d refused in 48 hours", k.Refused48h))
	}
}

func (o *Overview) hostWarnings(now time.Time) []string {
	w := []string{}
	switch {
	case o.LastActivity.IsZero():
		w = append(w, "no activations recorded yet")
	case now.Sub(o.LastActivity) >= quietAfter:
		w = append(w, fmt.Sprintf("no activity for %s", quietFor(now, o.LastActivity)))
	}
	below := 0
	for i := range o.KMS {
		if o.KMS[i].BelowThreshold() {
			below++
		}
	}
	if below > 0 {
		w = append(w, fmt.Sprintf("count below threshold for %d of %d KMS IDs", below, len(o.KMS)))
	}
	switch {
	case o.Cloned == 1:
		w = append(w, "1 client machine ID seen from several machine names (image cloned without sysprep?)")
	case o.Cloned > 1:
		w = append(w, fmt.Sprintf("%d client machine IDs seen from several machine names (images cloned without sysprep?)", o.Cloned))
	}
	return w
}

// quietFor is how long there has been no activity, in whole hours or days.
func quietFor(now, last time.Time) string {
	if last.IsZero() {
		return "48 hours or more"
	}
	d := now.Sub(last)
	if d < 48*time.Hour {
		return fmt.Sprintf("%d hours", int(d/time.Hour))
	}
	return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
}

func newHours(start time.Time) []HourBucket {
	h := make([]HourBucket, chartHours)
	for i := range h {
		h[i].Start = start.Add(time.Duration(i) * time.Hour)
	}
	return h
}

func countHour(h []HourBucket, start time.Time, r *store.Activation) {
	i := int(r.Received.Sub(start) / time.Hour)
	if i < 0 || i >= len(h) {
		return
	}
	if r.HResult == 0 {
		h[i].Activated++
	} else {
		h[i].Refused++
	}
}

func countReq(ok, refused *int, hr uint32) {
	if hr == 0 {
		*ok++
	} else {
		*refused++
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

var requestSeries = []chartSeries{{Class: "ok", Name: "activated"}, {Class: "bad", Name: "refused"}}

// hourChart draws hourly buckets with an axis label every tickEvery hours.
func hourChart(v *view, label string, height int, hours []HourBucket, tickEvery int) chart {
	in := make([]chartInput, len(hours))
	for i, h := range hours {
		lt := h.Start.In(v.loc)
		in[i] = chartInput{Values: []int{h.Activated, h.Refused},
			Title: fmt.Sprintf("%s–%s: %d activated, %d refused", lt.Format("Jan 2 15:04"),
				lt.Add(time.Hour).Format("15:04"), h.Activated, h.Refused)}
		if (len(hours)-1-i)%tickEvery == 0 {
			in[i].Tick = lt.Format("15:04")
			if i == len(hours)-1 {
				in[i].Tick = "now"
			}
		}
	}
	return newChart(label, height, requestSeries, in)
}
