package web_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"kmsd/internal/store"
)

// demoStore fills a store with 90 days of synthetic history: a few hundred
// machines renewing every 7 days, mostly in office hours, some stale, some
// refused, one cloned image. It only feeds the demo screenshots, so that
// the layout is judged with realistic volume.
func demoStore(t *testing.T, now time.Time) *fakeStore {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	fleet := []struct {
		product, machines int
		prefix            string
		vm                float64
	}{
		{64, 180, "WS", 0.05}, {63, 12, "LAB", 0}, {133, 14, "SRV", 0.8}, {238, 90, "WS", 0.05}, {102, 6, "SRV", 0.5},
	}
	var recs []store.Activation
	n := 0
	for _, f := range fleet {
		for range f.machines {
			n++
			cmid := fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", rng.Uint32(), rng.Uint32()&0xffff, rng.IntN(0xfff), rng.IntN(0xfff), rng.Uint64()&0xffffffffffff)
			name := fmt.Sprintf("%s-%04d", f.prefix, n)
			vm := rng.Float64() < f.vm
			first := now.Add(-time.Duration(rng.IntN(90*24)) * time.Hour)
			last := now
			if rng.Float64() < 0.08 { // stale: stopped renewing
				last = now.Add(-time.Duration(20+rng.IntN(30)) * 24 * time.Hour)
			}
			for at := first; at.Before(last); at = at.Add(7*24*time.Hour + time.Duration(rng.IntN(180)-90)*time.Minute) {
				at := officeHours(rng, at)
				if !at.Before(now) {
					break
				}
				hr := uint32(0)
				if rng.Float64() < 0.02 {
					hr = []uint32{0xC004F042, 0x8007000D, 0xC004F06C}[rng.IntN(3)]
				}
				r := record(f.product, cmid, name, at, hr)
				r.VM = vm
				r.Peer = fmt.Sprintf("10.%d.%d.%d:%d", 1+n/250, n%250, 10+rng.IntN(200), 49152+rng.IntN(16000))
				r.LicenseStatus = []uint32{1, 1, 1, 1, 1, 1, 2, 5}[rng.IntN(8)]
				r.BindingExpiration = uint32(rng.IntN(180*24*60) + 60)
				recs = append(recs, r)
			}
		}
	}
	// One image cloned without sysprep: one CMID, three names.
	for i, name := range []string{"CLONE-A", "CLONE-B", "CLONE-C"} {
		recs = append(recs, record(64, "c10ec10e-0000-4000-8000-00000000c10e", name, now.Add(-time.Duration(3+i*7)*time.Hour), 0))
	}
	st := newFakeStore()
	if err := st.Add(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	return st
}

// officeHours moves t into 07:00–19:00 UTC on its day, weekdays mostly.
func officeHours(rng *rand.Rand, t time.Time) time.Time {
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	if rng.Float64() < 0.15 {
		return d.Add(time.Duration(rng.IntN(24*60)) * time.Minute)
	}
	return d.Add(7*time.Hour + time.Duration(rng.IntN(12*60))*time.Minute)
}
