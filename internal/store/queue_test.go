package store_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"kmsd/internal/store"
	"kmsd/internal/store/memory"
	"kmsd/internal/store/sqlite"
	"kmsd/internal/store/storetest"
)

// fakeStore records batches; Add sleeps for delay and fails while down.
type fakeStore struct {
	store.Store // only Add and Close are used
	mu          sync.Mutex
	delay       time.Duration
	down        bool
	batches     [][]store.Activation
	closed      bool
}

func (f *fakeStore) Add(ctx context.Context, recs []store.Activation) error {
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return store.ErrClosed
	}
	if f.down {
		return errors.New("database is down")
	}
	f.batches = append(f.batches, append([]store.Activation(nil), recs...))
	return nil
}

func (f *fakeStore) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func (f *fakeStore) setDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

func (f *fakeStore) records() []store.Activation {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []store.Activation
	for _, b := range f.batches {
		out = append(out, b...)
	}
	return out
}

func closeQueue(t *testing.T, q *store.Queue) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := q.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestEnqueueNeverBlocks(t *testing.T) {
	f := &fakeStore{delay: 50 * time.Millisecond}
	q := store.NewQueue(f, 1000, 100, 10*time.Millisecond, nil)
	const n = 10_000
	recs := make([]store.Activation, n)
	for i := range recs {
		recs[i] = storetest.Rec(i, 0)
	}
	accepted := 0
	start := time.Now()
	for _, r := range recs {
		if q.Enqueue(r) {
			accepted++
		}
	}
	elapsed := time.Since(start)
	depth := q.Depth()
	if elapsed > 100*time.Millisecond {
		t.Errorf("%d enqueues took %v with a slow store", n, elapsed)
	}
	if q.Dropped() == 0 || q.Dropped() != uint64(n-accepted) {
		t.Errorf("Dropped() = %d; %d of %d accepted", q.Dropped(), accepted, n)
	}
	if depth > 1000+100 {
		t.Errorf("%d records waiting, more than size + batch", depth)
	}
	closeQueue(t, q)
	if got := len(f.records()); got != accepted || q.Committed() != uint64(accepted) || q.Depth() != 0 {
		t.Errorf("committed %d (%d), accepted %d, depth %d", got, q.Committed(), accepted, q.Depth())
	}
	t.Logf("%d enqueues in %v; %d accepted", n, elapsed, accepted)
}

// TestEnqueueFuncBuildsOnlyWithRoom: a full queue drops and counts
// without building the record; with room the record is built and queued.
func TestEnqueueFuncBuildsOnlyWithRoom(t *testing.T) {
	f := &fakeStore{delay: 200 * time.Millisecond}
	q := store.NewQueue(f, 10, 5, time.Millisecond, nil)
	built, accepted := 0, 0
	for i := range 200 {
		if q.EnqueueFunc(func() store.Activation { built++; return storetest.Rec(i, 0) }) {
			accepted++
		}
	}
	if accepted == 0 || accepted > 10+5+5 {
		t.Fatalf("accepted %d of 200 into a queue of 10 (batches of 5)", accepted)
	}
	if built != accepted {
		t.Errorf("built %d records, accepted %d: a full queue built records it dropped", built, accepted)
	}
	if q.Dropped() != uint64(200-accepted) {
		t.Errorf("Dropped() = %d, want %d", q.Dropped(), 200-accepted)
	}
	closeQueue(t, q)
	if got := len(f.records()); got != accepted {
		t.Errorf("committed %d, accepted %d", got, accepted)
	}
}

// TestWriterYieldsUnderBacklog: with a backlog the writer spends at most
// a quarter of its time writing; without one it writes at once; Close
// writes everything without pausing.
func TestWriterYieldsUnderBacklog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeStore{delay: 10 * time.Millisecond}
		q := store.NewQueue(f, 10_000, 100, 10*time.Millisecond, nil)
		for i := range 5000 {
			q.Enqueue(storetest.Rec(i, 0))
		}
		time.Sleep(time.Second)
		f.mu.Lock()
		batches := len(f.batches)
		f.mu.Unlock()
		// Busy 10 ms and paused 30 ms per batch: 25 batches a second
		// (100 without the pauses).
		if batches < 24 || batches > 26 {
			t.Errorf("%d batches written in 1 s of backlog, want 25", batches)
		}
		closeQueue(t, q)
		if got := len(f.records()); got != 5000 {
			t.Errorf("%d records after Close, want 5000", got)
		}

		// No backlog: a record is written within the flush interval and
		// the write, with no pause.
		f2 := &fakeStore{delay: 10 * time.Millisecond}
		q2 := store.NewQueue(f2, 10_000, 100, 10*time.Millisecond, nil)
		defer closeQueue(t, q2)
		for i := range 3 {
			q2.Enqueue(storetest.Rec(i, 0))
			time.Sleep(20 * time.Millisecond)
			synctest.Wait()
			if got := len(f2.records()); got != i+1 {
				t.Errorf("record %d: %d written after 20 ms, want %d", i, got, i+1)
			}
		}
	})
}

func TestRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeStore{down: true}
		q := store.NewQueue(f, 100, 10, 200*time.Millisecond, nil)
		for i := range 50 {
			q.Enqueue(storetest.Rec(i, 0))
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if q.Errors() == 0 || q.Committed() != 0 || q.Depth() != 50 {
			t.Fatalf("store down: errors %d, committed %d, depth %d", q.Errors(), q.Committed(), q.Depth())
		}
		// Records keep queueing up to the bound: 100 buffered + 10 held.
		accepted := 50
		for i := 50; i < 150; i++ {
			if q.Enqueue(storetest.Rec(i, 0)) {
				accepted++
			}
		}
		if accepted != 110 || q.Dropped() != 40 {
			t.Fatalf("accepted %d, dropped %d; want 110 and 40", accepted, q.Dropped())
		}
		f.setDown(false)
		time.Sleep(time.Minute)
		synctest.Wait()
		if q.Committed() != 110 || q.Depth() != 0 || q.Delayed() < 10 || q.Failed() != 0 {
			t.Errorf("after recovery: committed %d, depth %d, delayed %d, failed %d",
				q.Committed(), q.Depth(), q.Delayed(), q.Failed())
		}
		recs := f.records()
		for i, r := range recs {
			if r.CMID != storetest.CMID(i) {
				t.Fatalf("record %d is %s: order lost", i, r.CMID)
			}
		}
		closeQueue(t, q)
	})
}

func TestCloseFlushes(t *testing.T) {
	f := &fakeStore{}
	q := store.NewQueue(f, 1000, 100, time.Hour, nil)
	for i := range 250 {
		if !q.Enqueue(storetest.Rec(i, 0)) {
			t.Fatal("Enqueue refused with room left")
		}
	}
	closeQueue(t, q)
	if got := len(f.records()); got != 250 || !f.closed {
		t.Errorf("Close wrote %d of 250 records (store closed: %v)", got, f.closed)
	}
	for _, b := range f.batches {
		if len(b) > 100 {
			t.Errorf("batch of %d records", len(b))
		}
	}
	if q.Enqueue(storetest.Rec(1, 0)) || q.Dropped() != 1 {
		t.Error("Enqueue after Close accepted, or not counted")
	}
	if err := q.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestFlushEvery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeStore{}
		q := store.NewQueue(f, 1000, 100, 200*time.Millisecond, nil)
		q.Enqueue(storetest.Rec(1, 0))
		time.Sleep(150 * time.Millisecond)
		synctest.Wait()
		if q.Committed() != 0 {
			t.Error("a lone record written before flushEvery")
		}
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if q.Committed() != 1 {
			t.Error("a lone record not written after flushEvery")
		}
		closeQueue(t, q)
	})
}

func TestCloseGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeStore{down: true}
		q := store.NewQueue(f, 100, 10, 200*time.Millisecond, nil)
		for i := range 25 {
			q.Enqueue(storetest.Rec(i, 0))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := q.Close(ctx)
		if err == nil || !strings.Contains(err.Error(), "25 activation records not written") {
			t.Errorf("Close = %v", err)
		}
		if q.Failed() != 25 || q.Committed() != 0 || q.Depth() != 0 || !f.closed {
			t.Errorf("failed %d, committed %d, depth %d, store closed %v", q.Failed(), q.Committed(), q.Depth(), f.closed)
		}
	})
}

func TestStoreClosedUnderQueue(t *testing.T) {
	s := memory.New(0)
	q := store.NewQueue(s, 10, 5, time.Millisecond, nil)
	s.Close()
	q.Enqueue(storetest.Rec(1, 0))
	err := q.Close(context.Background())
	if err == nil || q.Failed() != 1 {
		t.Errorf("Close = %v, failed %d", err, q.Failed())
	}
}

// Kill test parameters: the child enqueues records into a sqlite store as
// fast as it can with a flush interval that never fires, reports how many
// were accepted and is killed with SIGKILL.
const (
	killEnv   = "KMSD_QUEUE_KILL_DB"
	killSize  = 500
	killBatch = 64
)

func TestKillLosesAtMostTheBound(t *testing.T) {
	if path := os.Getenv(killEnv); path != "" {
		killChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "kmsd.db")
	if s, err := sqlite.Open(path); errors.Is(err, sqlite.ErrUnavailable) {
		t.Skip(err)
	} else if err != nil {
		t.Fatal(err)
	} else {
		s.Close()
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillLosesAtMostTheBound$")
	cmd.Env = append(os.Environ(), killEnv+"="+path)
	stdin, _ := cmd.StdinPipe()
	defer stdin.Close()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	cmd.Process.Kill() // SIGKILL: no Close, no flush
	cmd.Wait()
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	accepted, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "accepted ")))
	if err != nil {
		t.Fatalf("child said %q", line)
	}
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatalf("reopen after kill -9: %v", err)
	}
	defer s.Close()
	recs, err := s.Activations(context.Background(), store.ActivationFilter{})
	if err != nil {
		t.Fatal(err)
	}
	lost := accepted - len(recs)
	t.Logf("accepted %d, committed %d, lost %d (bound %d)", accepted, len(recs), lost, killSize+killBatch)
	if lost < 0 || lost > killSize+killBatch {
		t.Errorf("lost %d records, bound is %d", lost, killSize+killBatch)
	}
	if lost >= killBatch {
		t.Errorf("lost %d, want fewer than one batch: the writer keeps up when the store is fast", lost)
	}
}

func killChild(path string) {
	s, err := sqlite.Open(path)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	q := store.NewQueue(s, killSize, killBatch, time.Hour, nil)
	accepted := 0
	for i := range 5000 {
		if q.Enqueue(storetest.Rec(i%300, time.Duration(i)*time.Millisecond)) {
			accepted++
		}
		if i%500 == 0 {
			time.Sleep(20 * time.Millisecond) // let the writer catch up now and then
		}
	}
	// Let the writer commit what it can; what is left is less than a batch
	// waiting for a flush interval that never comes.
	for q.Depth() >= killBatch {
		time.Sleep(time.Millisecond)
	}
	fmt.Printf("accepted %d\n", accepted)
	os.Stdin.Read(make([]byte, 1)) // wait for SIGKILL
	os.Exit(0)
}
