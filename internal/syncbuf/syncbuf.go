// Package syncbuf is an output sink for tests: a buffer that one goroutine
// (a child process's output, a timer) writes while a test reads it.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer collects what is written to it. With Limit > 0 it keeps writes
// only while it holds less than Limit bytes (a long-running server's
// output stays bounded); later writes are discarded but reported written.
// The zero value is an empty, unlimited buffer.
type Buffer struct {
	Limit int
	mu    sync.Mutex
	b     bytes.Buffer
}

// New returns a buffer keeping about limit bytes (0 = everything).
func New(limit int) *Buffer { return &Buffer{Limit: limit} }

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Limit > 0 && s.b.Len() >= s.Limit {
		return len(p), nil
	}
	return s.b.Write(p)
}

// String returns what was kept so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
