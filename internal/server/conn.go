package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"kmsd/internal/kms"
	"kmsd/internal/rpc"
)

type buffers struct {
	msg  []byte
	stub []byte
	out  []byte
}

var bufPool = sync.Pool{New: func() any {
	return &buffers{msg: make([]byte, 0, 512), stub: make([]byte, 0, 512), out: make([]byte, 0, 512)}
}}

type conn struct {
	srv      *Server
	nc       net.Conn
	peer     netip.AddrPort
	peerStr  string // peer as text, made on first use
	idle     atomic.Bool
	assoc    uint32
	contexts []rpc.Accepted
	frag     rpc.Reassembler
	// rbuf holds bytes read but not yet consumed: one read usually brings
	// a whole PDU (or several), so a PDU costs one read system call.
	rbuf    []byte
	rs, re  int
	results []rpc.Result
	faults  int
	dec     kms.Decision // reused for every request of the connection
	ev      Event
	// deadlineAt is when the read/write deadline was last set.
	deadlineAt time.Time
}

// deadline sets the read and write deadline to IdleTimeout from now,
// unless it was set less than IdleTimeout/64 ago: the deadline is a
// runtime timer, and moving it twice per request cost more than exactness
// is worth. A PDU or a write therefore gets between 63/64 of IdleTimeout
// and all of it.
func (c *conn) deadline(now time.Time) {
	if !c.deadlineAt.IsZero() && now.Sub(c.deadlineAt) < c.srv.IdleTimeout/64 {
		return
	}
	c.nc.SetDeadline(now.Add(c.srv.IdleTimeout))
	c.deadlineAt = now
}

func (c *conn) closeIfIdle() {
	if c.idle.Load() {
		c.nc.Close()
	}
}

// errClientClosed marks the ordinary end of a connection.
var errClientClosed = errors.New("server: client closed the connection")

// serve runs the connection until it ends, then logs why (once).
func (c *conn) serve() {
	defer c.nc.Close()
	err := c.loop()
	c.logEnd(err)
}

// readBufSize covers every PDU a KMS client sends; larger ones (up to
// rpc.MaxPDU) grow the buffer for that connection.
const readBufSize = 1024

func (c *conn) loop() error {
	s := c.srv
	for {
		if s.closing.Load() {
			return nil
		}
		c.deadline(time.Now())
		pdu, h, err := c.readPDU()
		if err != nil {
			return err
		}
		b := bufPool.Get().(*buffers)
		err = c.handle(pdu, h, b)
		bufPool.Put(b)
		if err != nil {
			return err
		}
	}
}

// fill reads more bytes into rbuf; idle marks a wait for a new PDU.
func (c *conn) fill(idle bool) error {
	if idle {
		c.idle.Store(true)
		defer c.idle.Store(false)
	}
	n, err := c.nc.Read(c.rbuf[c.re:])
	c.re += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// readPDU returns the next whole PDU, framed by frag_length. The slice is
// valid until the next call.
func (c *conn) readPDU() ([]byte, rpc.Header, error) {
	if c.rbuf == nil {
		c.rbuf = make([]byte, readBufSize)
	}
	if c.rs == c.re {
		c.rs, c.re = 0, 0
	}
	for c.re-c.rs < rpc.HeaderLen {
		if c.rs > 0 && len(c.rbuf)-c.rs < rpc.HeaderLen {
			c.re = copy(c.rbuf, c.rbuf[c.rs:c.re])
			c.rs = 0
		}
		if err := c.fill(c.re == c.rs); err != nil {
			if err == io.EOF && c.re == c.rs {
				return nil, rpc.Header{}, errClientClosed
			}
			return nil, rpc.Header{}, fmt.Errorf("%w: header: %w", rpc.ErrShortPDU, err)
		}
	}
	h, err := rpc.ParseHeader(c.rbuf[c.rs:c.re])
	if err != nil {
		return nil, h, err
	}
	n := int(h.FragLength)
	if n > len(c.rbuf) {
		grown := make([]byte, rpc.MaxPDU)
		c.re = copy(grown, c.rbuf[c.rs:c.re])
		c.rbuf, c.rs = grown, 0
	} else if c.rs+n > len(c.rbuf) {
		c.re = copy(c.rbuf, c.rbuf[c.rs:c.re])
		c.rs = 0
	}
	for c.re-c.rs < n {
		if err := c.fill(false); err != nil {
			return nil, h, fmt.Errorf("%w: %d-byte PDU: %w", rpc.ErrShortPDU, n, err)
		}
	}
	pdu := c.rbuf[c.rs : c.rs+n]
	c.rs += n
	return pdu, h, nil
}

// handle answers one PDU.
func (c *conn) handle(pdu []byte, h rpc.Header, b *buffers) error {
	var out []byte
	var err error
	switch h.Type {
	case rpc.TypeBind, rpc.TypeAlterContext:
		out, err = c.bind(pdu, b.out[:0])
	case rpc.TypeRequest:
		out, err = c.request(pdu, b)
	default:
		return fmt.Errorf("%w: %d", rpc.ErrUnknownType, h.Type)
	}
	if err != nil || out == nil {
		return err
	}
	c.deadline(time.Now())
	if _, err := c.nc.Write(out); err != nil {
		return err
	}
	if c.srv.Disconnect && h.Type == rpc.TypeRequest {
		return errDisconnect
	}
	return nil
}

var errDisconnect = errors.New("server: disconnect after answer (-d)")

func (c *conn) bind(pdu, out []byte) ([]byte, error) {
	var b rpc.Bind
	if err := b.Decode(pdu); err != nil {
		return nil, err
	}
	var accepted []rpc.Accepted
	c.results, accepted = c.srv.Negotiation.Negotiate(b.Contexts, c.results[:0], nil)
	for _, a := range accepted {
		if err := c.setContext(a); err != nil {
			return nil, err
		}
	}
	if c.assoc == 0 {
		c.assoc = c.srv.assoc.Add(1)
	}
	ack := rpc.BindAck{Alter: b.Alter, Flags: rpc.AckFlags(&b), CallID: b.CallID,
		MaxXmitFrag: b.MaxXmitFrag, MaxRecvFrag: b.MaxRecvFrag, AssocGroupID: c.assoc, Results: c.results}
	if !b.Alter {
		ack.SecAddr = strconv.Itoa(localPort(c.nc))
	}
	out, err := ack.Encode(out)
	if err != nil {
		return nil, err
	}
	// The answer must fit the client's receive limit (and ours): a bind of
	// many empty elements can ask for more than that.
	if limit := min(int(b.MaxRecvFrag), rpc.MaxPDU); len(out) > limit {
		return nil, &rpc.LimitError{Limit: "bind answer size", Max: limit, Got: len(out)}
	}
	return out, nil
}

func (c *conn) setContext(a rpc.Accepted) error {
	for i := range c.contexts {
		if c.contexts[i].ID == a.ID {
			c.contexts[i] = a
			return nil
		}
	}
	if len(c.contexts) >= MaxContexts {
		return &rpc.LimitError{Limit: "presentation contexts", Max: MaxContexts, Got: len(c.contexts) + 1}
	}
	c.contexts = append(c.contexts, a)
	return nil
}

func (c *conn) syntaxOf(id uint16) rpc.Syntax {
	for _, a := range c.contexts {
		if a.ID == id {
			return a.Syntax
		}
	}
	return rpc.SyntaxNone
}

func localPort(nc net.Conn) int {
	if ta, ok := nc.LocalAddr().(*net.TCPAddr); ok {
		return ta.Port
	}
	return 0
}

func (c *conn) request(pdu []byte, b *buffers) ([]byte, error) {
	var frag rpc.Request
	if err := frag.Decode(pdu); err != nil {
		return nil, err
	}
	req, err := c.frag.Add(&frag)
	if err != nil || req == nil {
		return nil, err
	}
	syn := c.syntaxOf(req.ContextID)
	if syn == rpc.SyntaxNone {
		return c.fault(req, rpc.StatusUnknownInterface, b.out[:0])
	}
	if req.Opnum != 0 {
		return c.fault(req, rpc.StatusOpRangeError, b.out[:0])
	}
	payload, err := rpc.RequestPayload(req.Stub, syn)
	if err != nil {
		return c.fault(req, rpc.StatusBadStubData, b.out[:0])
	}
	start := time.Now()
	d := &c.dec
	msg, herr := c.srv.CurrentHost().Handle(b.msg[:0], payload, d)
	if herr == nil {
		b.stub = rpc.AppendResponseStub(b.stub[:0], syn, msg)
	} else if hr, ok := refusal(herr); ok {
		b.stub = rpc.AppendRefusalStub(b.stub[:0], syn, hr)
	} else {
		return nil, herr
	}
	c.report(d, syn, start)
	resp := rpc.Response{Flags: rpc.FlagFirst | rpc.FlagLast, CallID: req.CallID,
		AllocHint: uint32(len(b.stub)), ContextID: req.ContextID, Stub: b.stub}
	return resp.Encode(b.out[:0])
}

// refusal returns the HRESULT of a refusal error. It is a function of its
// own so that the target of errors.As is allocated only for refusals, not
// for every request.
func refusal(err error) (uint32, bool) {
	var re *kms.RefusalError
	if errors.As(err, &re) {
		return re.HResult, true
	}
	return 0, false
}

func (c *conn) fault(req *rpc.Request, status uint32, out []byte) ([]byte, error) {
	// The first fault of a connection is logged at info, later ones at
	// debug, so a client looping on bad requests cannot flood the log.
	level := slog.LevelInfo
	if c.faults++; c.faults > 1 {
		level = slog.LevelDebug
	}
	c.srv.Logger.Log(context.Background(), level, "fault", "peer", c.peerText(), "call", req.CallID,
		"context", req.ContextID, "status", fmt.Sprintf("0x%08X", status), "faults", c.faults)
	f := rpc.Fault{CallID: req.CallID, Status: status}
	return f.Encode(out)
}

// logEnd is the one place that turns the error that ended a connection
// into a log line.
func (c *conn) logEnd(err error) {
	l := c.srv.Logger
	ctx := context.Background()
	// LogAttrs: the line of an ordinary close is at debug level and must
	// cost nothing (no boxed arguments) when that level is off.
	peer := slog.String("peer", c.peerText())
	switch {
	case err == nil, errors.Is(err, errClientClosed), errors.Is(err, errDisconnect), errors.Is(err, net.ErrClosed):
		l.LogAttrs(ctx, slog.LevelDebug, "connection closed", peer)
	case isLimit(err):
		l.LogAttrs(ctx, slog.LevelWarn, "connection closed: limit exceeded", peer, slog.Any("err", err))
	case isTimeout(err):
		l.LogAttrs(ctx, slog.LevelInfo, "connection closed: idle timeout", peer)
	case errors.Is(err, rpc.ErrShortPDU), errors.Is(err, rpc.ErrMalformed), errors.Is(err, rpc.ErrUnknownType),
		errors.Is(err, rpc.ErrBadVersion), errors.Is(err, io.ErrUnexpectedEOF):
		l.LogAttrs(ctx, slog.LevelWarn, "connection closed: bad input", peer, slog.Any("err", err))
	default:
		l.LogAttrs(ctx, slog.LevelInfo, "connection closed", peer, slog.Any("err", err))
	}
}

// isLimit and isTimeout keep errors.As's targets off the heap on the
// ordinary path (an ordinary close checks neither).
func isLimit(err error) bool {
	var le *rpc.LimitError
	return errors.As(err, &le)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// report logs one line per activation and passes the decision on.
func (c *conn) report(d *kms.Decision, syn rpc.Syntax, start time.Time) {
	s := c.srv
	now := time.Now()
	if s.Logger.Enabled(context.Background(), slog.LevelInfo) {
		c.logDecision(d, syn, now)
	}
	if s.Recorder != nil {
		c.ev = Event{Time: now, Peer: c.peer, Syntax: syn, Decision: d, Elapsed: now.Sub(start)}
		s.Recorder.Record(&c.ev)
	}
}

// peerText is the peer for log lines; hidden in privacy mode.
func (c *conn) peerText() string {
	if c.srv.Privacy {
		return "(hidden)"
	}
	if c.peerStr == "" {
		c.peerStr = c.peer.String()
	}
	return c.peerStr
}
