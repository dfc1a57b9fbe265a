package syncbuf

import (
	"strings"
	"sync"
	"testing"
)

func TestBuffer(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("x"))
			}
		})
	}
	wg.Wait()
	if got := b.String(); got != strings.Repeat("x", 800) {
		t.Fatalf("unlimited: %d bytes", len(got))
	}
	l := New(10)
	for range 5 {
		if n, err := l.Write([]byte("abcd")); n != 4 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if got := l.String(); got != "abcdabcdabcd" {
		t.Fatalf("limited: %q (writes kept while under the limit)", got)
	}
}
