package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Queue defaults.
const (
	DefaultQueueSize  = 10_000
	DefaultBatch      = 256
	DefaultFlushEvery = 200 * time.Millisecond
)

// Retry timing of a failed batch, and the time one Add may take.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 10 * time.Second
	addTimeout = 30 * time.Second
)

// Queue carries activation records from the host to a Store so that
// answers never wait on the database. Enqueue never blocks: it puts the
// record in a bounded buffer, or drops and counts it when the buffer is
// full. One writer goroutine takes records in batches of up to batch
// records, or whatever arrived within flushEvery of the first one, and
// hands each batch to Store.Add (one transaction). When Add fails the
// writer keeps the batch and retries with exponential backoff (100 ms up to
// 10 s) while new records keep queueing up to the bound; once the store
// is back the queue catches up. A store applies a batch atomically, so a
// retried batch is never stored twice.
//
// While a full batch is already waiting after a commit (a flood far above
// any real client population's rate), the writer pauses for three times
// the commit's duration, so that it takes at most a quarter of one core
// from answering; records beyond what it writes are dropped and counted.
//
// Close (on SIGTERM) stops taking records, writes everything queued
// (without pauses) and closes the store.
//
// Loss bound: a record is durable once its batch is committed (for sqlite,
// WAL mode makes a commit survive the process being killed). If the
// process dies without Close (kill -9, a crash), the records lost are
// those accepted by Enqueue and not yet committed: at most size (the
// buffer) + batch (the batch being written) records. Records refused by
// Enqueue are never lost silently: they are counted by Dropped.
type Queue struct {
	s     Store
	ch    chan Activation
	batch int
	every time.Duration
	log   *slog.Logger

	mu     sync.RWMutex // Enqueue holds it for reading; Close sets closed
	closed bool

	ctx       context.Context // cancelled when Close gives up waiting
	cancel    context.CancelFunc
	stop      chan struct{} // closed by Close: write what is queued and exit
	done      chan struct{} // closed by the writer when it exits
	closeOnce sync.Once
	closeErr  error

	held                                      atomic.Int64 // records in the writer's batch
	dropped, errs, committed, delayed, failed atomic.Uint64
	droppedLogged                             uint64 // writer only
}

// NewQueue starts a queue of at most size records in front of s, writing
// batches of up to batch records at least every flushEvery. Zero or
// negative values select DefaultQueueSize, DefaultBatch and
// DefaultFlushEvery; a nil logger discards. The queue owns s: Close closes
// it.
func NewQueue(s Store, size int, batch int, flushEvery time.Duration, logger *slog.Logger) *Queue {
	if size <= 0 {
		size = DefaultQueueSize
	}
	if batch <= 0 {
		batch = DefaultBatch
	}
	if flushEvery <= 0 {
		flushEvery = DefaultFlushEvery
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	q := &Queue{s: s, ch: make(chan Activation, size), batch: batch, every: flushEvery, log: logger,
		stop: make(chan struct{}), done: make(chan struct{})}
	q.ctx, q.cancel = context.WithCancel(context.Background())
	go q.run()
	return q
}

// Enqueue queues a record without blocking. It returns false, and counts
// the record as dropped, when the queue is full or closed.
func (q *Queue) Enqueue(a Activation) bool {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if !q.closed {
		select {
		case q.ch <- a:
			return true
		default:
		}
	}
	q.dropped.Add(1)
	return false
}

// EnqueueFunc is Enqueue for the record build makes, built only when the
// queue has room: during a flood that keeps the queue full, records that
// would be dropped are not built (formatting a record costs about as much
// as the activation it describes).
func (q *Queue) EnqueueFunc(build func() Activation) bool {
	if len(q.ch) == cap(q.ch) {
		q.dropped.Add(1)
		return false
	}
	return q.Enqueue(build())
}

// Depth is the number of records accepted and not yet committed.
func (q *Queue) Depth() int { return len(q.ch) + int(q.held.Load()) }

// Dropped counts the records Enqueue refused (queue full or closed).
func (q *Queue) Dropped() uint64 { return q.dropped.Load() }

// Errors counts the failed Store.Add calls.
func (q *Queue) Errors() uint64 { return q.errs.Load() }

// Committed counts the records the store accepted.
func (q *Queue) Committed() uint64 { return q.committed.Load() }

// Delayed counts the records committed only after at least one failed
// attempt.
func (q *Queue) Delayed() uint64 { return q.delayed.Load() }

// Failed counts the records accepted but given up: still failing when
// Close ran out of time, or the store was closed under the queue.
func (q *Queue) Failed() uint64 { return q.failed.Load() }

// Close stops accepting records, writes every queued record and closes the
// store. If ctx ends first it abandons the rest (counted by Failed) and
// returns an error; the store is closed in either case. Later calls return
// the same result.
func (q *Queue) Close(ctx context.Context) error {
	q.closeOnce.Do(func() {
		q.mu.Lock()
		q.closed = true
		q.mu.Unlock()
		close(q.stop)
		select {
		case <-q.done:
		case <-ctx.Done():
			q.cancel()
			<-q.done
		}
		q.cancel()
		var err error
		if n := q.failed.Load(); n > 0 {
			err = fmt.Errorf("store: %d activation records not written", n)
		}
		q.closeErr = errors.Join(err, q.s.Close())
	})
	return q.closeErr
}

// run is the writer goroutine.
func (q *Queue) run() {
	defer close(q.done)
	buf := make([]Activation, 0, q.batch)
	timer := time.NewTimer(q.every)
	timer.Stop()
	for {
		select {
		case a := <-q.ch:
			buf = append(buf, a)
			q.held.Store(int64(len(buf)))
			if len(buf) == 1 {
				timer.Reset(q.every)
			}
			if len(buf) < q.batch {
				continue
			}
		case <-timer.C:
		case <-q.stop:
			timer.Stop()
			q.drain(buf)
			return
		}
		timer.Stop()
		if len(buf) > 0 {
			began := time.Now()
			buf = q.commit(buf)
			if len(q.ch) >= q.batch {
				q.yield(time.Since(began))
			}
		}
	}
}

// writerPause is the pause after a batch, in multiples of the time the
// batch took, while a full batch is already waiting: under a sustained
// flood the writer uses at most a quarter of one core and answering
// clients keeps the rest; what the writer cannot take is dropped and
// counted. At ordinary rates the queue empties and the writer never
// pauses.
const (
	writerPause    = 3
	maxWriterPause = 2 * time.Second
)

// yield pauses the writer after a batch that took d, unless Close asks it
// to finish.
func (q *Queue) yield(d time.Duration) {
	t := time.NewTimer(min(writerPause*d, maxWriterPause))
	defer t.Stop()
	select {
	case <-t.C:
	case <-q.stop:
	}
}

// drain writes buf and everything left in the channel, batch by batch.
// Close has set closed, so nothing new arrives.
func (q *Queue) drain(buf []Activation) {
	for {
		for len(buf) < q.batch && len(q.ch) > 0 {
			buf = append(buf, <-q.ch)
			q.held.Store(int64(len(buf)))
		}
		if len(buf) == 0 {
			return
		}
		buf = q.commit(buf)
		if q.ctx.Err() != nil {
			for len(q.ch) > 0 {
				<-q.ch
				q.failed.Add(1)
			}
			return
		}
	}
}

// commit writes buf, retrying until it succeeds, the store is closed or
// Close gives up, and returns buf emptied.
func (q *Queue) commit(buf []Activation) []Activation {
	backoff := minBackoff
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(q.ctx, addTimeout)
		err := q.s.Add(ctx, buf)
		cancel()
		if err == nil {
			q.committed.Add(uint64(len(buf)))
			if attempt > 1 {
				q.delayed.Add(uint64(len(buf)))
				q.log.Info("activation store writes recovered", "records", len(buf), "attempts", attempt)
			}
			q.logDrops()
			return q.release(buf)
		}
		q.errs.Add(1)
		if attempt == 1 {
			q.log.Warn("cannot write activation records; retrying", "records", len(buf),
				"queued", len(q.ch), "err", err)
		}
		if errors.Is(err, ErrClosed) {
			return q.giveUp(buf, err)
		}
		select {
		case <-time.After(backoff):
		case <-q.ctx.Done():
			return q.giveUp(buf, err)
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (q *Queue) giveUp(buf []Activation, err error) []Activation {
	q.failed.Add(uint64(len(buf)))
	q.log.Error("activation records lost", "records", len(buf), "err", err)
	return q.release(buf)
}

func (q *Queue) release(buf []Activation) []Activation {
	clear(buf) // drop references to strings
	q.held.Store(0)
	return buf[:0]
}

// logDrops reports, at most once per batch, that records were dropped.
func (q *Queue) logDrops() {
	if d := q.dropped.Load(); d != q.droppedLogged {
		q.log.Warn("activation queue full: records dropped", "dropped", d-q.droppedLogged, "dropped_total", d)
		q.droppedLogged = d
	}
}
