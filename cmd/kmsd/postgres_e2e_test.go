//go:build unix

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"kmsd/internal/store"
	"kmsd/internal/store/postgres"
	"kmsd/internal/testpg"
)

// pgClients is `kmsd clients --db dsn --json`.
func pgClients(t *testing.T, dsn string) []clientRow {
	t.Helper()
	out, err := exec.Command(kmsdBinary, "clients", "--db", dsn, "--json").Output()
	if err != nil {
		t.Fatalf("kmsd clients: %v\n%s", err, out)
	}
	var rows []clientRow
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("kmsd clients --json: %v\n%s", err, out)
	}
	return rows
}

// pgRecords reads the activation records of the database directly.
func pgRecords(t *testing.T, dsn string) []store.Activation {
	t.Helper()
	s, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs, err := s.Activations(context.Background(), store.ActivationFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// waitRecords waits (at most limit) until every CMID of want has a record
// in the database, and returns the records.
func waitRecords(t *testing.T, dsn string, want []string, limit time.Duration) []store.Activation {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		recs := pgRecords(t, dsn)
		seen := map[string]bool{}
		for _, r := range recs {
			seen[r.CMID] = true
		}
		var missing []string
		for _, c := range want {
			if !seen[c] {
				missing = append(missing, c)
			}
		}
		if len(missing) == 0 {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d activations not in the database after %v: %v", len(missing), len(want), limit, missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPostgresTwoHosts runs two hosts on one PostgreSQL database: the
// inventory is shared (a CMID seen on both hosts is one client), every
// record names its host, and stopping PostgreSQL under a host neither
// stops it answering nor loses what it answered meanwhile.
func TestPostgresTwoHosts(t *testing.T) {
	pg := testpg.StartPrivate(t)
	dsn := pg.NewDatabase(t)
	p1, p2 := freePort(t), freePort(t)
	a1, a2 := fmt.Sprintf("127.0.0.1:%d", p1), fmt.Sprintf("127.0.0.1:%d", p2)
	_, log1 := host(t, "kmsd", p1, "-L", a1, "--db", dsn)
	host(t, "kmsd", p2, "-L", a2, "--db", dsn)

	// 10 clients on host 1, 10 others on host 2, and the first 5 again on
	// host 2: 20 machines, 25 activations.
	both := activateN(t, a1, 10, 0)
	only2 := activateN(t, a2, 10, 10)
	activateN(t, a2, 5, 0)
	all := append(append([]string{}, both...), only2...)
	recs := waitRecords(t, dsn, all, 10*time.Second)
	// Every CMID has a record; wait (bounded) until the repeated ones have
	// their second record too: the hosts' queues flush independently.
	for deadline := time.Now().Add(10 * time.Second); len(recs) < 25 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		recs = pgRecords(t, dsn)
	}

	rows := pgClients(t, dsn)
	byCMID := map[string]clientRow{}
	for _, r := range rows {
		if _, dup := byCMID[r.CMID]; dup {
			t.Errorf("kmsd clients lists %s twice", r.CMID)
		}
		byCMID[r.CMID] = r
	}
	if len(rows) != len(all) {
		t.Errorf("kmsd clients lists %d clients, want %d", len(rows), len(all))
	}
	perCMID := map[string]int{}
	for _, r := range recs {
		if r.Host == "" {
			t.Errorf("record %d of %s has no host", r.ID, r.CMID)
		}
		perCMID[r.CMID]++
	}
	for i, c := range all {
		want := 1
		if i < 5 {
			want = 2 // seen on both hosts
		}
		if byCMID[c].Activations != want || perCMID[c] != want {
			t.Errorf("%s: inventory counts %d activations and the log holds %d records, want %d",
				c, byCMID[c].Activations, perCMID[c], want)
		}
	}
	if len(recs) != 25 {
		t.Errorf("%d records, want 25", len(recs))
	}
	// The count a host gives is over both hosts' clients.
	out, err := exec.Command(kmsdBinary, "stats", "--db", dsn, "--json").Output()
	if err != nil {
		t.Fatalf("kmsd stats: %v", err)
	}
	var st statsReport
	if err := json.Unmarshal(out, &st); err != nil || len(st.KMS) == 0 || st.KMS[0].ActiveClients != 20 {
		t.Errorf("kmsd stats: %v: %s", err, out)
	}
	t.Logf("two hosts: %d clients, %d records, hosts %q", len(rows), len(recs), hostsOf(recs))

	// PostgreSQL goes away: host 1 keeps answering (activateN fails the
	// test on an unanswered request), and catches up when it is back.
	pg.Stop(t)
	stopped := time.Now()
	during := activateN(t, a1, 5, 100)
	time.Sleep(time.Second) // the host retries meanwhile
	during = append(during, activateN(t, a1, 5, 105)...)
	down := time.Since(stopped)
	pg.Restart(t)
	restarted := time.Now()
	waitRecords(t, dsn, during, 20*time.Second)
	caughtUp := time.Since(restarted)
	if !strings.Contains(log1.String(), "cannot write activation records; retrying") {
		t.Errorf("host 1 did not report the failed writes:\n%s", log1)
	}
	if n := len(pgRecords(t, dsn)); n != 35 {
		t.Errorf("%d records after the outage, want 35 (none lost, none twice)", n)
	}
	t.Logf("outage: 10 activations answered during %v with PostgreSQL down; all in the database %v after the restart",
		down.Round(time.Millisecond), caughtUp.Round(time.Millisecond))
}

func hostsOf(recs []store.Activation) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range recs {
		if !seen[r.Host] {
			seen[r.Host] = true
			out = append(out, r.Host)
		}
	}
	return out
}

// TestPostgresBadDSN: a database that cannot be reached fails `kmsd
// clients` with one line naming it.
func TestPostgresBadDSN(t *testing.T) {
	port := freePort(t) // nothing listens there
	dsn := fmt.Sprintf("postgres://kmsd:secret@127.0.0.1:%d/kmsd", port)
	out, err := exec.Command(kmsdBinary, "clients", "--db", dsn).CombinedOutput()
	want := fmt.Sprintf("kmsd clients: postgres: connecting to 127.0.0.1:%d: connection refused\n", port)
	if err == nil || string(out) != want {
		t.Fatalf("kmsd clients = %v, %q; want %q", err, out, want)
	}
}

// TestPostgresSharedCounts: with -M1, hosts sharing a database count the
// clients the other hosts served, within --count-sync.
func TestPostgresSharedCounts(t *testing.T) {
	pg := testpg.StartPrivate(t)
	dsn := pg.NewDatabase(t)
	p1, p2 := freePort(t), freePort(t)
	a1, a2 := fmt.Sprintf("127.0.0.1:%d", p1), fmt.Sprintf("127.0.0.1:%d", p2)
	host(t, "kmsd", p1, "-L", a1, "--db", dsn, "-M1", "-E1", "--count-sync", "1s")
	host(t, "kmsd", p2, "-L", a2, "--db", dsn, "-M1", "-E1", "--count-sync", "1s")

	waitRecords(t, dsn, activateN(t, a1, 3, 700), 10*time.Second)
	// countOn activates cmid on addr until the count it is given reaches
	// want (bounded) and returns the last count.
	countOn := func(addr, cmid string, want int) int {
		t.Helper()
		got := -1
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
			out, _ := runClient(t, addr, "-l", "64", "-c", cmid, "--json")
			if _, err := fmt.Sscanf(out[strings.Index(out, `"active_clients":`)+len(`"active_clients":`):], "%d", &got); err != nil {
				t.Fatalf("no count in %s", out)
			}
			if got == want {
				break
			}
		}
		return got
	}
	start := time.Now()
	if got := countOn(a2, "6f1c2b8e-4d3a-4c5b-9a7e-000000000800", 4); got != 4 {
		t.Fatalf("host 2 counts %d clients, want 4 (3 served by host 1 and itself)", got)
	}
	t.Logf("host 2 counted host 1's clients after %v", time.Since(start).Round(time.Millisecond))
	// And host 1 learns of host 2's client.
	if got := countOn(a1, "6f1c2b8e-4d3a-4c5b-9a7e-000000000700", 4); got != 4 {
		t.Fatalf("host 1 counts %d clients, want 4", got)
	}
}
