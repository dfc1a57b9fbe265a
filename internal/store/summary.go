package store

import (
	"cmp"
	"context"
	"slices"
	"time"
)

// Summary is what a KMS host knows of its recent activity, per KMS ID
// (`kmsd stats`, the dashboard).
type Summary struct {
	Since, Until time.Time // the window: Since inclusive, Until exclusive
	Requests     int       // records in the window
	KMS          []KMSSummary
}

// KMSSummary is one KMS ID's activity in a Summary window. KMSID "" holds
// the requests that could not be decoded.
type KMSSummary struct {
	KMSID         string
	KMSName       string // as recorded (the host's product table)
	ActiveClients int    // distinct CMIDs activated in the window
	MaxNPolicy    uint32 // largest N policy requested
	// Successful activations in the last day, week and whole window.
	Activations1d, Activations7d, ActivationsWindow int
	Refusals                                        map[uint32]int // by HRESULT
	// LastActivity is the latest request in the window, or for a KMS ID
	// quiet in the window the latest one of its clients in the inventory.
	LastActivity time.Time
}

// summaryPage is how many records Summarize reads at a time.
const summaryPage = 5000

// Summarize reads the records of [until − window, until) page by page
// (ending the window at until keeps records added meanwhile from shifting
// the pages) and the inventory, and sums them up per KMS ID, sorted by KMS
// ID. Until is meant to be now: ActiveClients and the inventory have no
// upper bound.
func Summarize(ctx context.Context, s Store, until time.Time, window time.Duration) (*Summary, error) {
	sum := &Summary{Since: until.Add(-window), Until: until}
	by := map[string]*KMSSummary{}
	get := func(id string) *KMSSummary {
		k, ok := by[id]
		if !ok {
			k = &KMSSummary{KMSID: id, Refusals: map[uint32]int{}}
			by[id] = k
		}
		return k
	}
	for off := 0; ; off += summaryPage {
		recs, err := s.Activations(ctx, ActivationFilter{Since: sum.Since, Until: until, Limit: summaryPage, Offset: off})
		if err != nil {
			return nil, err
		}
		for i := range recs {
			sum.Requests++
			get(recs[i].KMSID).count(&recs[i], until)
		}
		if len(recs) < summaryPage {
			break
		}
	}
	cs, err := s.Clients(ctx, ClientFilter{})
	if err != nil {
		return nil, err
	}
	for i := range cs {
		get(cs[i].KMSID).seen(cs[i].LastSeen)
	}
	for id, k := range by {
		if id != "" {
			if k.ActiveClients, err = s.ActiveClients(ctx, id, sum.Since); err != nil {
				return nil, err
			}
		}
		sum.KMS = append(sum.KMS, *k)
	}
	slices.SortFunc(sum.KMS, func(a, b KMSSummary) int { return cmp.Compare(a.KMSID, b.KMSID) })
	return sum, nil
}

func (k *KMSSummary) count(a *Activation, until time.Time) {
	k.seen(a.Received)
	k.MaxNPolicy = max(k.MaxNPolicy, a.NPolicy)
	k.KMSName = cmp.Or(k.KMSName, a.KMSName)
	if a.HResult != 0 {
		k.Refusals[a.HResult]++
		return
	}
	age := until.Sub(a.Received)
	k.ActivationsWindow++
	if age <= 7*24*time.Hour {
		k.Activations7d++
	}
	if age <= 24*time.Hour {
		k.Activations1d++
	}
}

func (k *KMSSummary) seen(t time.Time) {
	if t.After(k.LastActivity) {
		k.LastActivity = t
	}
}
