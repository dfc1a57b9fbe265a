// Package server runs a KMS host on stream listeners: it frames DCE/RPC
// PDUs, negotiates presentation contexts, passes KMS requests to a kms.Host
// and writes the answers, with deadlines and limits on every connection.
// Every outcome is reported to a Recorder.
package server

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"kmsd/internal/kms"
	"kmsd/internal/rpc"
)

// Event is one activation decision, reported to the Recorder.
type Event struct {
	Time     time.Time
	Peer     netip.AddrPort
	Syntax   rpc.Syntax
	Decision *kms.Decision // valid only during the call
	Elapsed  time.Duration
}

// Recorder receives every activation decision. It must not block.
type Recorder interface {
	Record(e *Event)
}

// Defaults.
const (
	DefaultIdleTimeout = 30 * time.Second
	DefaultWorkerIdle  = 2 * time.Second
	// MaxContexts bounds the presentation contexts a connection may hold.
	MaxContexts = 256
)

// Server is a KMS host. Set its fields, then call Serve for each listener.
type Server struct {
	Host        *kms.Host
	Negotiation rpc.Negotiation
	// IdleTimeout closes a connection when a read or write blocks longer
	// (vlmcsd -t). Zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxConns limits simultaneous connections (vlmcsd -m); 0 = unlimited.
	MaxConns int
	// Disconnect closes each connection after its first answer (vlmcsd -d).
	Disconnect bool
	// AllowPeer, if set, is asked before any byte is read; false closes the
	// connection at once (vlmcsd -o 2, --allow/--deny).
	AllowPeer func(netip.Addr) bool
	Logger    *slog.Logger
	Recorder  Recorder
	// Names resolves product names for log lines; may be nil.
	Names func(d *kms.Decision) string

	// MaxPerAddr caps simultaneous connections from one address; more are
	// closed at once. 0 = unlimited.
	MaxPerAddr int
	// Stats counts connections; read it with its atomic methods.
	Stats Stats
	// Privacy hides client names and addresses in log lines (vlmcsd -X).
	Privacy bool
	// WorkerIdle is how long the goroutine of a finished connection waits
	// for the next one (see worker); 0 means DefaultWorkerIdle.
	WorkerIdle time.Duration

	live      atomic.Pointer[kms.Host]
	initOnce  sync.Once
	assoc     atomic.Uint32
	sem       chan struct{}
	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	perAddr   map[netip.Addr]int
	wg        sync.WaitGroup
	closing   atomic.Bool
	// Workers: see worker.
	handoff chan *conn
	quit    chan struct{}
}

// SetHost swaps the host used for new requests (SIGHUP reload); requests
// in flight finish with the host they started with.
func (s *Server) SetHost(h *kms.Host) { s.live.Store(h) }

// CurrentHost is the host new requests use.
func (s *Server) CurrentHost() *kms.Host {
	if h := s.live.Load(); h != nil {
		return h
	}
	return s.Host
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("server: closed")

func (s *Server) init() {
	s.initOnce.Do(func() {
		s.assoc.Store(rand.Uint32() | 1)
		if s.MaxConns > 0 {
			s.sem = make(chan struct{}, s.MaxConns)
		}
		s.listeners = make(map[net.Listener]struct{})
		s.conns = make(map[*conn]struct{})
		s.perAddr = make(map[netip.Addr]int)
		s.handoff = make(chan *conn)
		s.quit = make(chan struct{})
		if s.Logger == nil {
			s.Logger = slog.New(slog.DiscardHandler)
		}
		if s.IdleTimeout <= 0 {
			s.IdleTimeout = DefaultIdleTimeout
		}
		if s.WorkerIdle <= 0 {
			s.WorkerIdle = DefaultWorkerIdle
		}
	})
}

// Serve accepts connections on l until Shutdown or a permanent error.
func (s *Server) Serve(l net.Listener) error {
	s.init()
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		if s.sem != nil {
			s.sem <- struct{}{}
		}
		nc, err := l.Accept()
		if err != nil {
			if s.sem != nil {
				<-s.sem
			}
			if s.closing.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.Logger.Warn("accept failed, retrying", "err", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		s.startConn(nc)
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (s *Server) startConn(nc net.Conn) {
	c := &conn{srv: s, nc: nc, peer: addrPort(nc.RemoteAddr())}
	s.Stats.Accepted.Add(1)
	if s.AllowPeer != nil && !s.AllowPeer(c.peer.Addr()) {
		s.reject(c, "address not allowed")
		return
	}
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		nc.Close()
		s.release()
		return
	}
	addr := c.peer.Addr()
	if s.MaxPerAddr > 0 && s.perAddr[addr] >= s.MaxPerAddr {
		s.mu.Unlock()
		s.reject(c, "too many connections from this address")
		return
	}
	s.perAddr[addr]++
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.Stats.Open.Add(1)
	select {
	case s.handoff <- c: // a waiting worker takes it
	default:
		go s.worker(c)
	}
}

// Worker reuse: a goroutine that has served a connection waits up to
// WorkerIdle for the next one instead of ending. A new goroutine starts
// with a small stack that each connection's first request would grow
// again (copying it: ~5% of the host's time under a storm of new
// connections), and the read buffer goes with the worker too. At most
// maxIdleWorkers wait; the rest end, and all end on Shutdown.
const maxIdleWorkers = 256

func (s *Server) worker(c *conn) {
	var t *time.Timer
	for {
		s.serveConn(c)
		rbuf := c.rbuf
		if s.Stats.IdleWorkers.Add(1) > maxIdleWorkers {
			s.Stats.IdleWorkers.Add(-1)
			return
		}
		if t == nil {
			t = time.NewTimer(s.WorkerIdle)
		} else {
			t.Reset(s.WorkerIdle)
		}
		c = nil
		select {
		case c = <-s.handoff:
			t.Stop()
		case <-t.C:
		case <-s.quit:
		}
		s.Stats.IdleWorkers.Add(-1)
		if c == nil {
			return
		}
		c.rbuf = rbuf
	}
}

// serveConn runs one connection to its end and releases what it held.
func (s *Server) serveConn(c *conn) {
	defer s.wg.Done()
	defer s.release()
	c.serve()
	s.Stats.Open.Add(-1)
	addr := c.peer.Addr()
	s.mu.Lock()
	delete(s.conns, c)
	if s.perAddr[addr]--; s.perAddr[addr] <= 0 {
		delete(s.perAddr, addr)
	}
	s.mu.Unlock()
}

// reject closes a connection before reading a byte and counts it.
func (s *Server) reject(c *conn, reason string) {
	s.Stats.Rejected.Add(1)
	s.Logger.Info("refused client", "peer", c.peerText(), "reason", reason)
	c.nc.Close()
	s.release()
}

// Stats are connection counters.
type Stats struct {
	Accepted atomic.Uint64 // connections accepted
	Rejected atomic.Uint64 // closed before reading (access control, limits)
	Open     atomic.Int64  // open now
	// IdleWorkers counts goroutines waiting for a next connection.
	IdleWorkers atomic.Int64
}

func (s *Server) release() {
	if s.sem != nil {
		<-s.sem
	}
}

func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	if a != nil {
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			return ap
		}
	}
	return netip.AddrPort{}
}

// Shutdown stops accepting, closes idle connections, lets requests in
// flight finish and waits for every connection to end or ctx to expire.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	if !s.closing.Swap(true) {
		close(s.quit)
	}
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.closeIfIdle()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}
