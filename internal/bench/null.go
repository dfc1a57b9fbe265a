package bench

import (
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"kmsd/internal/kms"
	"kmsd/internal/products"
	"kmsd/internal/rpc"
	"kmsd/internal/wire"
)

// NullHost is an in-process KMS host that does no KMS work: it answers
// binds by negotiating as kmsd does (NDR64 and BTFN on) and every request
// with one response built at start by kms.Host.Handle for one fixed
// request (Request), patching only call_id and context ID. A V6 answer
// echoes the client machine ID and time of its request under an HMAC, so
// only clients that send exactly Request for every activation get answers
// that verify: run the bench against it with Config.FixedRequest =
// Request(). It measures the ceiling of the load generator on a machine.
type NullHost struct {
	l       net.Listener
	request []byte
	resp    [3][]byte // response PDU by rpc.Syntax (NDR32, NDR64)
	port    string

	ackMu sync.RWMutex
	acks  map[string]*ackEntry

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

type ackEntry struct {
	ack      []byte // call_id 0
	accepted []rpc.Accepted
}

// nullIdleTimeout closes idle connections of a NullHost.
const nullIdleTimeout = 30 * time.Second

// maxAckCache bounds the distinct binds a NullHost remembers.
const maxAckCache = 64

// StartNullHost builds the fixed request for product (0-based) with
// protocol major, its answer, and starts serving on 127.0.0.1 with a port
// chosen by the system. Close stops it.
func StartNullHost(product int, major uint16) (*NullHost, error) {
	t := products.Builtin()
	if product < 0 || product >= len(t.Products) {
		return nil, fmt.Errorf("bench: no product number %d", product+1)
	}
	if major < 4 || major > 6 {
		return nil, fmt.Errorf("bench: protocol %d: want 4, 5 or 6", major)
	}
	base := buildBase(t, product, major)
	rng := newRNG()
	setRandomCMID(&base.CMID, rng.Uint64(), rng.Uint64())
	base.ClientTime = wire.FileTimeSeconds(time.Now().Unix())
	base.SetWorkstationName("null-host.bench")
	var iv [16]byte
	binary.LittleEndian.PutUint64(iv[:8], rng.Uint64())
	binary.LittleEndian.PutUint64(iv[8:], rng.Uint64())
	req := kms.EncodeRequest(nil, &base, iv)

	slots := make([]kms.Slot, len(t.CSVLKs))
	for i, k := range t.CSVLKs {
		slots[i] = kms.NewSlot(k.BuiltinEPID, kms.DefaultHWID)
	}
	host := &kms.Host{Table: t, Slots: slots, Env: kms.Env{Rand: crand.Reader, Now: time.Now},
		Policy: kms.Policy{ActivationInterval: kms.DefaultActivationInterval, RenewalInterval: kms.DefaultRenewalInterval}}
	var d kms.Decision
	msg, err := host.Handle(nil, req, &d)
	if err != nil {
		return nil, fmt.Errorf("bench: null host answer: %w", err)
	}
	if _, err := kms.VerifyResponse(req, msg); err != nil {
		return nil, fmt.Errorf("bench: null host answer does not verify: %w", err)
	}
	h := &NullHost{request: req, acks: map[string]*ackEntry{}, conns: map[net.Conn]struct{}{}}
	for _, syn := range []rpc.Syntax{rpc.NDR32, rpc.NDR64} {
		stub := rpc.AppendResponseStub(nil, syn, msg)
		r := rpc.Response{Flags: rpc.FlagFirst | rpc.FlagLast, AllocHint: uint32(len(stub)), Stub: stub}
		if h.resp[syn], err = r.Encode(nil); err != nil {
			return nil, err
		}
	}
	if h.l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	h.port = strconv.Itoa(h.l.Addr().(*net.TCPAddr).Port)
	h.wg.Go(h.accept)
	return h, nil
}

// Addr is the host's address, 127.0.0.1:port.
func (h *NullHost) Addr() string { return h.l.Addr().String() }

// Request returns the one request payload whose answer the host replays.
func (h *NullHost) Request() []byte { return append([]byte(nil), h.request...) }

// Close stops accepting, closes every connection and waits for them.
func (h *NullHost) Close() error {
	h.mu.Lock()
	h.closed = true
	err := h.l.Close()
	for c := range h.conns {
		c.Close()
	}
	h.mu.Unlock()
	h.wg.Wait()
	return err
}

func (h *NullHost) accept() {
	var backoff time.Duration
	for {
		nc, err := h.l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			nc.Close()
			return
		}
		h.conns[nc] = struct{}{}
		h.wg.Add(1)
		h.mu.Unlock()
		go func() {
			defer h.wg.Done()
			h.serve(nc)
			h.mu.Lock()
			delete(h.conns, nc)
			h.mu.Unlock()
			nc.Close()
		}()
	}
}

// serve answers PDUs until the peer closes, sends something other than a
// bind, alter_context or request, or stays idle for nullIdleTimeout.
func (h *NullHost) serve(nc net.Conn) {
	var hdr [rpc.HeaderLen]byte
	in := make([]byte, rpc.MaxPDU)
	out := make([]byte, 0, 512)
	var key []byte
	var contexts []rpc.Accepted
	for {
		nc.SetDeadline(time.Now().Add(nullIdleTimeout))
		if _, err := io.ReadFull(nc, hdr[:]); err != nil {
			return
		}
		ph, err := rpc.ParseHeader(hdr[:])
		if err != nil {
			return
		}
		pdu := in[:ph.FragLength]
		copy(pdu, hdr[:])
		if _, err := io.ReadFull(nc, pdu[rpc.HeaderLen:]); err != nil {
			return
		}
		switch ph.Type {
		case rpc.TypeBind, rpc.TypeAlterContext:
			key = append(append(key[:0], pdu[2:4]...), pdu[rpc.HeaderLen:]...)
			e, err := h.ackFor(key, pdu)
			if err != nil {
				return
			}
			for _, a := range e.accepted {
				contexts = setContext(contexts, a)
			}
			out = append(out[:0], e.ack...)
		case rpc.TypeRequest:
			if len(pdu) < 24 {
				return
			}
			ctxID := binary.LittleEndian.Uint16(pdu[20:])
			syn := rpc.SyntaxNone
			for _, a := range contexts {
				if a.ID == ctxID {
					syn = a.Syntax
				}
			}
			if syn == rpc.SyntaxNone {
				f := rpc.Fault{CallID: ph.CallID, ContextID: ctxID, Status: rpc.StatusUnknownInterface}
				out, _ = f.Encode(out[:0])
				break
			}
			out = append(out[:0], h.resp[syn]...)
			binary.LittleEndian.PutUint16(out[20:], ctxID)
		default:
			return
		}
		binary.LittleEndian.PutUint32(out[12:], ph.CallID)
		if _, err := nc.Write(out); err != nil {
			return
		}
	}
}

func setContext(contexts []rpc.Accepted, a rpc.Accepted) []rpc.Accepted {
	for i := range contexts {
		if contexts[i].ID == a.ID {
			contexts[i] = a
			return contexts
		}
	}
	if len(contexts) >= 256 {
		return contexts
	}
	return append(contexts, a)
}

// ackFor returns the answer to a bind or alter_context, built once per
// distinct PDU (flags and body; the call_id is patched by the caller).
func (h *NullHost) ackFor(key, pdu []byte) (*ackEntry, error) {
	h.ackMu.RLock()
	e := h.acks[string(key)]
	h.ackMu.RUnlock()
	if e != nil {
		return e, nil
	}
	var b rpc.Bind
	if err := b.Decode(pdu); err != nil {
		return nil, err
	}
	neg := rpc.Negotiation{NDR64: true, BTFN: true}
	results, accepted := neg.Negotiate(b.Contexts, nil, nil)
	ack := rpc.BindAck{Alter: b.Alter, Flags: rpc.AckFlags(&b), MaxXmitFrag: b.MaxXmitFrag, MaxRecvFrag: b.MaxRecvFrag,
		AssocGroupID: 0x00010001, Results: results}
	if !b.Alter {
		ack.SecAddr = h.port
	}
	raw, err := ack.Encode(nil)
	if err != nil {
		return nil, err
	}
	e = &ackEntry{ack: raw, accepted: accepted}
	h.ackMu.Lock()
	if len(h.acks) < maxAckCache {
		h.acks[string(key)] = e
	}
	h.ackMu.Unlock()
	return e, nil
}
