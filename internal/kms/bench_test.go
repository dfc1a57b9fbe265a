package kms_test

import (
	"testing"

	"kmsd/internal/kms"
)

func benchmarkHandle(b *testing.B, major uint16) {
	h, _ := newHost(kms.Policy{})
	m := newClientMaker(30)
	base := m.base(b, 64, major)
	req := m.encode(&base)
	var d kms.Decision
	dst := make([]byte, 0, 512)
	b.ReportAllocs()
	b.SetBytes(int64(len(req)))
	for b.Loop() {
		var err error
		dst, err = h.Handle(dst[:0], req, &d)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHandleV4(b *testing.B) { benchmarkHandle(b, 4) }
func BenchmarkHandleV5(b *testing.B) { benchmarkHandle(b, 5) }
func BenchmarkHandleV6(b *testing.B) { benchmarkHandle(b, 6) }
