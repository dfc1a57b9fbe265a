//go:build unix

package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"kmsd/internal/store"
	"kmsd/internal/store/postgres"
	"kmsd/internal/store/storetest"
	"kmsd/internal/testpg"
)

// TestPostgres runs everything against one server: KMSD_TEST_POSTGRES, or
// a private one (skipped without PostgreSQL unless KMSD_REQUIRE_POSTGRES).
func TestPostgres(t *testing.T) {
	srv := testpg.Start(t)
	open := func(t *testing.T, dsn string) *postgres.Store {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := postgres.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	t.Run("Contract", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store { return open(t, srv.NewDatabase(t)) })
	})
	t.Run("MigrationRace", func(t *testing.T) { testMigrationRace(t, srv.NewDatabase(t)) })
	t.Run("SchemaTooNew", func(t *testing.T) {
		dsn := srv.NewDatabase(t)
		open(t, dsn).Close()
		exec(t, dsn, `INSERT INTO schema_version (version, name) VALUES (99, '0099_future.sql')`)
		_, err := postgres.Open(context.Background(), dsn)
		if !errors.Is(err, postgres.ErrSchemaTooNew) || !strings.Contains(err.Error(), "version 99") {
			t.Fatalf("Open = %v, want ErrSchemaTooNew naming version 99", err)
		}
	})
	t.Run("TwoHostsOneInventory", func(t *testing.T) {
		dsn := srv.NewDatabase(t)
		testTwoHosts(t, open(t, dsn), open(t, dsn))
	})
	t.Run("PruneDuringAdd", func(t *testing.T) { testPruneDuringAdd(t, open(t, srv.NewDatabase(t))) })
	t.Run("MissingDatabase", func(t *testing.T) {
		dsn := srv.NewDatabase(t)
		i := strings.Index(dsn, "kmsd_test_")
		if i < 0 {
			t.Skip("cannot rename the database in", dsn)
		}
		_, err := postgres.Open(context.Background(), dsn[:i]+"kmsd_missing"+dsn[strings.IndexAny(dsn[i:], "?& ")+i:])
		if err == nil || !strings.HasPrefix(err.Error(), "postgres: connecting to ") ||
			!strings.Contains(err.Error(), `database "kmsd_missing" does not exist`) {
			t.Fatalf("Open = %v", err)
		}
		t.Log(err)
	})
	t.Run("Encoding", func(t *testing.T) {
		dsn := srv.NewDatabaseWith(t, "ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
		_, err := postgres.Open(context.Background(), dsn)
		if err == nil || !strings.Contains(err.Error(), "encoding is LATIN1; kmsd needs UTF8") {
			t.Fatalf("Open of a LATIN1 database = %v", err)
		}
	})
	t.Run("UnstorableText", func(t *testing.T) {
		// Text PostgreSQL refuses must not fail the batch (the queue
		// would retry it for ever).
		s := open(t, srv.NewDatabase(t))
		r := storetest.Rec(1, 0)
		r.Workstation, r.Product = "pc\x00one", "bad \xff byte"
		if err := s.Add(context.Background(), []store.Activation{r}); err != nil {
			t.Fatal(err)
		}
		cs, err := s.Clients(context.Background(), store.ClientFilter{})
		if err != nil || len(cs) != 1 || cs[0].Workstation != "pcone" || cs[0].Product != "bad \uFFFD byte" {
			t.Fatalf("got %+v, %v", cs, err)
		}
	})
	t.Run("Timezone", func(t *testing.T) {
		// The session time zone must not change what comes back.
		dsn := srv.NewDatabase(t)
		s := open(t, withParam(t, dsn, "timezone", "Asia/Kolkata"))
		r := storetest.Rec(1, 0)
		if err := s.Add(context.Background(), []store.Activation{r}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Activations(context.Background(), store.ActivationFilter{Since: r.Received})
		if err != nil || len(got) != 1 || !got[0].Received.Equal(r.Received) || got[0].Received.Location() != time.UTC {
			t.Fatalf("got %+v, %v", got, err)
		}
	})
	// Last: it stops and restarts the server.
	t.Run("Outage", func(t *testing.T) { testOutage(t, srv, open(t, srv.NewDatabase(t))) })
}

// testOutage stops the server under a queue: records keep being accepted
// and all are stored once the server is back.
func testOutage(t *testing.T, srv *testpg.Server, s *postgres.Store) {
	if !srv.Private() {
		t.Skip("needs a private server (KMSD_TEST_POSTGRES is set)")
	}
	q := store.NewQueue(s, 0, 8, 10*time.Millisecond, nil)
	defer q.Close(context.Background())
	waitFor := func(what string, limit time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v (committed %d, errors %d, depth %d)", what, limit,
					q.Committed(), q.Errors(), q.Depth())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	n := 0
	enqueue := func(k int) {
		for range k {
			if !q.Enqueue(storetest.Rec(n, time.Duration(n)*time.Second)) {
				t.Fatal("Enqueue refused a record")
			}
			n++
		}
	}
	enqueue(20)
	waitFor("first records committed", 10*time.Second, func() bool { return q.Committed() == 20 })
	srv.Stop(t)
	down := time.Now()
	enqueue(20)
	waitFor("a failed write", 10*time.Second, func() bool { return q.Errors() > 0 })
	time.Sleep(time.Second) // several retries
	enqueue(10)
	if q.Committed() != 20 {
		t.Fatalf("%d records committed with the server down", q.Committed())
	}
	srv.Restart(t)
	restarted := time.Now()
	waitFor("catching up", 20*time.Second, func() bool { return q.Committed() == 50 && q.Depth() == 0 })
	t.Logf("down %v; caught up %v after the restart; %d failed writes, %d records delayed",
		restarted.Sub(down).Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond), q.Errors(), q.Delayed())
	got, err := s.Activations(context.Background(), store.ActivationFilter{})
	if err != nil || len(got) != 50 {
		t.Fatalf("%d records stored, %v; want 50", len(got), err)
	}
	cs, err := s.Clients(context.Background(), store.ClientFilter{})
	if err != nil || len(cs) != 50 {
		t.Fatalf("%d clients, %v; want 50", len(cs), err)
	}
}

func exec(t *testing.T, dsn, sql string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatal(err)
	}
}

func withParam(t *testing.T, dsn, key, value string) string {
	t.Helper()
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	if !strings.Contains(dsn, "://") {
		return dsn + " " + key + "=" + value
	}
	return dsn + sep + key + "=" + value
}

// testMigrationRace opens one new database from five goroutines at once:
// every Open succeeds and each migration is recorded once.
func testMigrationRace(t *testing.T, dsn string) {
	const n = 5
	var wg sync.WaitGroup
	errs := make([]error, n)
	stores := make([]*postgres.Store, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			stores[i], errs[i] = postgres.Open(ctx, dsn)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
		} else {
			defer stores[i].Close()
		}
	}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), `SELECT version, name FROM schema_version ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var v int
		var name string
		if err := rows.Scan(&v, &name); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d %s", v, name))
	}
	if rows.Err() != nil || len(got) != 1 || got[0] != "1 0001_init.sql" {
		t.Fatalf("schema_version = %q, %v; want [1 0001_init.sql] once", got, rows.Err())
	}
	// Every store works.
	for i, s := range stores {
		if s == nil {
			continue
		}
		if err := s.Add(context.Background(), []store.Activation{storetest.Rec(i, 0)}); err != nil {
			t.Errorf("store %d: %v", i, err)
		}
	}
	t.Logf("%d concurrent Opens, schema_version %q", n, got)
}

// testTwoHosts writes the same CMIDs from two stores (two hosts) at once:
// the inventory counts every record once and keeps the host of each.
func testTwoHosts(t *testing.T, a, b *postgres.Store) {
	const batches, size, cmids = 40, 16, 8
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for h, s := range []*postgres.Store{a, b} {
		wg.Go(func() {
			for k := range batches {
				recs := make([]store.Activation, size)
				for i := range recs {
					n := k*size + i
					// Both hosts go through the CMIDs in opposite orders.
					c := n % cmids
					if h == 1 {
						c = cmids - 1 - c
					}
					recs[i] = storetest.Rec(c, time.Duration(n)*time.Millisecond+time.Duration(h)*time.Microsecond)
					recs[i].Host = fmt.Sprintf("kms%d", h+1)
				}
				if err := s.Add(context.Background(), recs); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for name, s := range map[string]*postgres.Store{"a": a, "b": b} {
		cs, err := s.Clients(context.Background(), store.ClientFilter{})
		if err != nil {
			t.Fatal(err)
		}
		sum := 0
		for _, c := range cs {
			sum += c.Activations
		}
		if len(cs) != cmids || sum != 2*batches*size {
			t.Errorf("store %s: %d clients with %d activations, want %d and %d", name, len(cs), sum, cmids, 2*batches*size)
		}
		if n, err := s.ActiveClients(context.Background(), storetest.KMSWindows, storetest.Base); err != nil || n != cmids {
			t.Errorf("store %s: ActiveClients = %d, %v; want %d", name, n, err, cmids)
		}
	}
	recs, err := a.Activations(context.Background(), store.ActivationFilter{CMID: storetest.CMID(0)})
	if err != nil {
		t.Fatal(err)
	}
	hosts := map[string]int{}
	for _, r := range recs {
		hosts[r.Host]++
	}
	if hosts["kms1"] != batches*size/cmids || hosts["kms2"] != batches*size/cmids {
		t.Errorf("records of CMID 0 by host: %v", hosts)
	}
}

// testPruneDuringAdd prunes while writers add: neither fails (no
// deadlock), and clients refreshed by the writers survive.
func testPruneDuringAdd(t *testing.T, s *postgres.Store) {
	ctx := context.Background()
	var old []store.Activation
	for n := range 50 {
		old = append(old, storetest.Rec(n, -time.Hour))
	}
	if err := s.Add(ctx, old); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for w := range 2 {
		wg.Go(func() {
			for k := range 20 {
				var recs []store.Activation
				for n := range 50 {
					c := n
					if w == 1 {
						c = 49 - n
					}
					recs = append(recs, storetest.Rec(c, time.Duration(k)*time.Second))
				}
				if err := s.Add(ctx, recs); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 10 {
			if _, err := s.Prune(ctx, storetest.Base); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	cs, err := s.Clients(ctx, store.ClientFilter{})
	if err != nil || len(cs) != 50 {
		t.Fatalf("%d clients, %v; want 50", len(cs), err)
	}
}

// TestConnectErrors checks that Open fails with one line naming what
// failed, without waiting for long and without the password.
func TestConnectErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close() // nothing listens there now
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close() // accepts (the backlog) but never answers
	cases := []struct {
		name, dsn, want string
	}{
		{"refused", "postgres://kmsd:secret@" + closed + "/kmsd", "postgres: connecting to " + closed + ": connection refused"},
		{"no answer", "postgres://kmsd:secret@" + silent.Addr().String() + "/kmsd?connect_timeout=1",
			"postgres: connecting to " + silent.Addr().String() + ": no answer within 1s"},
		{"bad url", "postgres://kmsd:secret@127.0.0.1:99999/kmsd", "postgres: invalid DSN"},
		{"bad setting", "postgres://kmsd:secret@127.0.0.1/kmsd?sslmode=sometimes", "postgres: invalid DSN"},
	}
	for _, c := range cases {
		begin := time.Now()
		_, err := postgres.Open(context.Background(), c.dsn)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: Open = %v, want %q...", c.name, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error shows the password or has several lines: %v", c.name, err)
		}
		if d := time.Since(begin); d > 5*time.Second {
			t.Errorf("%s: took %v", c.name, d)
		}
		t.Logf("%s: %v", c.name, err)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://kmsd:secret@db:5432/kmsd?sslmode=require": "postgres://kmsd:xxxxx@db:5432/kmsd?sslmode=require",
		"postgresql://kmsd@db/kmsd?password=secret":           "postgresql://kmsd@db/kmsd?password=xxxxx",
		"postgres://kmsd@db/kmsd":                             "postgres://kmsd@db/kmsd",
		"host=db password=secret user=kmsd":                   "host=db password=xxxxx user=kmsd",
		"host=db password = 'se cret' user=kmsd":              "host=db password = xxxxx user=kmsd",
		"postgres://kmsd:sec%zzret@db/kmsd":                   "(unparsable URL)",
	} {
		if got := postgres.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
