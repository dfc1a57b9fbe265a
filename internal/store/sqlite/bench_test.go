//go:build !(mips || mipsle || mips64 || mips64le || illumos || nosqlite)

package sqlite_test

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"kmsd/internal/store"
	"kmsd/internal/store/sqlite"
	"kmsd/internal/store/storetest"
)

// BenchmarkAdd measures the record writer: batches of new clients (each
// record a new CMID, as in a load test) and of returning ones (renewals of
// 1,000 known clients), written to a file database as the queue writes them.
func BenchmarkAdd(b *testing.B) {
	for _, batch := range []int{256, 2048} {
		for _, kind := range []string{"new", "renewals"} {
			b.Run(kind+"/batch="+strconv.Itoa(batch), func(b *testing.B) {
				s, err := sqlite.Open(filepath.Join(b.TempDir(), "kmsd.db"))
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				ctx := context.Background()
				recs := make([]store.Activation, batch)
				n := 0
				b.ResetTimer()
				for i := 0; i < b.N; i += batch {
					for j := range recs {
						id := n
						if kind == "renewals" {
							id = n % 1000
						}
						recs[j] = storetest.Rec(id, time.Duration(n)*time.Millisecond)
						n++
					}
					if err := s.Add(ctx, recs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n)/1e3, "µs/record")
			})
		}
	}
}
