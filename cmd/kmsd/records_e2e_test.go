//go:build unix

package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"kmsd/internal/store"
	"kmsd/internal/store/sqlite"
)

func countClients(t *testing.T, path string) map[string]bool {
	t.Helper()
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatalf("database does not open: %v", err)
	}
	defer s.Close()
	cs, err := s.Clients(context.Background(), store.ClientFilter{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, c := range cs {
		out[c.CMID] = true
	}
	return out
}

func activateN(t *testing.T, addr string, n, from int) []string {
	t.Helper()
	var cmids []string
	for i := 0; i < n; i++ {
		cmid := fmt.Sprintf("6f1c2b8e-4d3a-4c5b-9a7e-%012d", from+i)
		if out, code := runClient(t, addr, "-l", "64", "-c", cmid); code != 7 && code != 0 {
			t.Fatalf("activation %d: %d %s", i, code, out)
		}
		cmids = append(cmids, cmid)
	}
	return cmids
}

// TestRecordsSurviveSIGTERMAndSIGKILL: SIGTERM flushes every record;
// SIGKILL loses none that were committed before it, and the database still
// opens afterwards.
func TestRecordsSurviveSIGTERMAndSIGKILL(t *testing.T) {
	db := filepath.Join(t.TempDir(), "kmsd.db")
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd, _ := host(t, "kmsd", port, "-L", addr, "--db", "sqlite:"+db)
	first := activateN(t, addr, 20, 0)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	got := countClients(t, db)
	for _, c := range first {
		if !got[c] {
			t.Fatalf("record of %s lost on SIGTERM", c)
		}
	}

	// Restart on the same database, wait until new records are committed
	// (visible to another reader), then kill -9 during further load.
	cmd, _ = host(t, "kmsd", port, "-L", addr, "--db", "sqlite:"+db)
	second := activateN(t, addr, 10, 100)
	deadline := time.Now().Add(5 * time.Second)
	for {
		got = countClients(t, db)
		all := true
		for _, c := range second {
			all = all && got[c]
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("records not committed within 5 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	load := exec.Command(kmsdBinary, "bench", addr, "-n", "100000", "-d", "3s", "-c", "8", "--json-only")
	load.Start()
	time.Sleep(500 * time.Millisecond)
	cmd.Process.Kill()
	cmd.Wait()
	load.Process.Kill()
	load.Wait()
	got = countClients(t, db)
	for _, c := range append(first, second...) {
		if !got[c] {
			t.Fatalf("committed record of %s lost after SIGKILL", c)
		}
	}
	t.Logf("%d clients in the database after the kill", len(got))
}

// TestCountsSurviveRestart: with -M1 and a database, clients activated
// before a restart still count after it.
func TestCountsSurviveRestart(t *testing.T) {
	db := filepath.Join(t.TempDir(), "kmsd.db")
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd, _ := host(t, "kmsd", port, "-L", addr, "--db", "sqlite:"+db, "-M1", "-E1")
	activateN(t, addr, 3, 500)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	host(t, "kmsd", port, "-L", addr, "--db", "sqlite:"+db, "-M1", "-E1")
	out, _ := runClient(t, addr, "-l", "64", "-c", "6f1c2b8e-4d3a-4c5b-9a7e-000000000999", "--json")
	if !strings.Contains(out, `"active_clients":4`) {
		t.Fatalf("after a restart a fourth client got:\n%s", out)
	}
}
