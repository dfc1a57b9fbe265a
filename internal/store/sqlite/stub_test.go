//go:build mips || mipsle || mips64 || mips64le || illumos || nosqlite

package sqlite_test

import (
	"errors"
	"testing"

	"kmsd/internal/store/sqlite"
)

func TestUnavailable(t *testing.T) {
	if _, err := sqlite.Open(sqlite.Memory); !errors.Is(err, sqlite.ErrUnavailable) {
		t.Fatalf("Open = %v, want ErrUnavailable", err)
	}
}
