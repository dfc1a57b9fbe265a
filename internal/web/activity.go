package web

import (
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

// ActivityQuery selects activation records.
type ActivityQuery struct {
	Result  string `json:"result,omitempty"` // "", "activated" or an HRESULT "0xC004F042"
	KMSID   string `json:"kms_id,omitempty"`
	CMID    string `json:"cmid,omitempty"`
	Page    int    `json:"page"`
	PerPage int    `json:"per_page"`
}

// Activity is the data of /activity and /api/activity: the newest records
// first.
type Activity struct {
	Query   ActivityQuery `json:"query"`
	Records []RecordRow   `json:"records"`
	More    bool          `json:"more"` // a next page exists
	Results [][2]string   `json:"-"`
	Prev    string        `json:"-"`
	Next    string        `json:"-"`
	Reset   string        `json:"-"`
	KMSName string        `json:"-"`
}

// RecordRow is one activation record as shown.
type RecordRow struct {
	ID                 int64     `json:"id"`
	Received           time.Time `json:"received"`
	Peer               string    `json:"peer"`
	Workstation        string    `json:"workstation"`
	CMID               string    `json:"cmid"`
	Product            string    `json:"product"`
	SKUID              string    `json:"sku_id"`
	KMSID              string    `json:"kms_id"`
	KMSName            string    `json:"kms_name"`
	Protocol           string    `json:"protocol"`
	Result             Result    `json:"result"`
	Count              uint32    `json:"count"`
	NPolicy            uint32    `json:"n_policy"`
	VM                 bool      `json:"vm"`
	LicenseStatus      uint32    `json:"license_status"`
	LicenseText        string    `json:"license_status_text"`
	BindingExpiration  uint32    `json:"binding_expiration_minutes"`
	ClockSkew          float64   `json:"clock_skew_seconds"`
	EPID               string    `json:"epid"`
	ActivationInterval uint32    `json:"activation_interval_minutes"`
	RenewalInterval    uint32    `json:"renewal_interval_minutes"`
}

func parseActivityQuery(q url.Values) ActivityQuery {
	aq := ActivityQuery{Result: q.Get("result"), KMSID: strings.TrimSpace(q.Get("kms")), CMID: strings.TrimSpace(q.Get("cmid")),
		Page: max(atoiDefault(q.Get("page"), 1), 1), PerPage: min(max(atoiDefault(q.Get("per"), defaultPerPage), 1), maxPerPage)}
	if _, ok := parseResult(aq.Result); !ok {
		aq.Result = ""
	}
	return aq
}

// parseResult reads "activated" or an HRESULT in hex; "" means any.
func parseResult(s string) (*uint32, bool) {
	if s == "" {
		return nil, true
	}
	if s == "activated" {
		v := uint32(0)
		return &v, true
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(s), "0x"), 16, 32)
	if err != nil {
		return nil, false
	}
	v := uint32(n)
	return &v, true
}

func (s *Server) activityPage(ctx context.Context, r *http.Request, v *view) (any, error) {
	return s.activity(ctx, parseActivityQuery(r.URL.Query()), v)
}

// activity lists activation records, a page at a time (the store pages).
func (s *Server) activity(ctx context.Context, q ActivityQuery, v *view) (*Activity, error) {
	if s.Store == nil {
		return nil, ErrNoStore
	}
	hr, _ := parseResult(q.Result)
	recs, err := s.Store.Activations(ctx, store.ActivationFilter{CMID: q.CMID, KMSID: q.KMSID, HResult: hr,
		Limit: q.PerPage + 1, Offset: (q.Page - 1) * q.PerPage})
	if err != nil {
		return nil, fmt.Errorf("activations: %w", err)
	}
	a := &Activity{Query: q, Records: []RecordRow{}}
	if len(recs) > q.PerPage {
		a.More, recs = true, recs[:q.PerPage]
	}
	for i := range recs {
		a.Records = append(a.Records, s.recordRow(&recs[i]))
	}
	a.Results = [][2]string{{"", "any result"}, {"activated", "activated"}}
	codes := make([]uint32, 0, len(hresultMessages))
	for hr := range hresultMessages {
		codes = append(codes, hr)
	}
	slices.Sort(codes)
	for _, hr := range codes {
		r := DecodeResult(hr)
		a.Results = append(a.Results, [2]string{r.Code, r.Code + " " + r.Message})
	}
	if q.KMSID != "" {
		a.KMSName = s.kmsInfo(q.KMSID).Name
	}
	per := ""
	if q.PerPage != defaultPerPage {
		per = strconv.Itoa(q.PerPage)
	}
	base := func(page int) string {
		return v.Link("/activity", "result", q.Result, "kms", q.KMSID, "cmid", q.CMID, "per", per, "page", strconv.Itoa(page))
	}
	if q.Page > 1 {
		a.Prev = base(q.Page - 1)
	}
	if a.More {
		a.Next = base(q.Page + 1)
	}
	a.Reset = v.Link("/activity")
	return a, nil
}

func (s *Server) recordRow(r *store.Activation) RecordRow {
	row := RecordRow{ID: r.ID, Received: r.Received, Peer: r.Peer, Workstation: r.Workstation, CMID: r.CMID,
		Product: r.Product, SKUID: r.SKUID, KMSID: r.KMSID, KMSName: s.kmsInfo(r.KMSID).Name, Protocol: r.Protocol,
		Result: DecodeResult(r.HResult), Count: r.Count, NPolicy: r.NPolicy, VM: r.VM, LicenseStatus: r.LicenseStatus,
		LicenseText: LicenseStatusName(r.LicenseStatus), BindingExpiration: r.BindingExpiration, EPID: r.EPID,
		ActivationInterval: r.ActivationInterval, RenewalInterval: r.RenewalInterval}
	if !r.ClientTime.IsZero() {
		row.ClockSkew = r.ClientTime.Sub(r.Received).Round(time.Second).Seconds()
	}
	return row
}
