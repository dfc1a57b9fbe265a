package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"kmsd/internal/kms"
	"kmsd/internal/rpc"
	"kmsd/internal/wire"
)

// Error kinds of Report.Errors.
const (
	KindConnect         = "connect"
	KindTimeout         = "timeout"
	KindClosed          = "closed"
	KindProtocol        = "protocol"
	KindInvalidResponse = "invalid-response"
	// Refusals are counted as "refused-0x%08X" with the HRESULT.
)

// kindError carries the kind of a failed activation.
type kindError struct {
	kind string
	err  error
}

func (e *kindError) Error() string { return e.kind + ": " + e.err.Error() }
func (e *kindError) Unwrap() error { return e.err }

// refusedError is a host's refusal with an HRESULT.
type refusedError uint32

func (e refusedError) Error() string { return fmt.Sprintf("refused-0x%08X", uint32(e)) }

func protocolErr(format string, a ...any) error {
	return &kindError{KindProtocol, fmt.Errorf(format, a...)}
}

// answered reports whether err is a well-formed answer the connection
// survives (a refusal or a response that failed verification).
func answered(err error) bool {
	var re refusedError
	var ke *kindError
	return errors.As(err, &re) || errors.As(err, &ke) && ke.kind == KindInvalidResponse
}

// errorKind names the kind of a failed activation.
func errorKind(err error) string {
	var re refusedError
	var ke *kindError
	var ne net.Error
	switch {
	case errors.As(err, &re):
		return re.Error()
	case errors.As(err, &ke) && ke.kind != "":
		return ke.kind
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return KindTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return KindClosed
	}
	return KindProtocol
}

// conn is the state of one RPC association.
type conn struct {
	nc     net.Conn
	ndr32  bool // context 0 (NDR32) usable, possibly through alter_context
	ndr64  bool // context 1 (NDR64) usable
	calls  int  // requests sent
	callID uint32
}

// worker runs activations one after another. Its buffers are reused, so an
// activation allocates only inside answer verification.
type worker struct {
	r      *runner
	rng    *rand.ChaCha8
	dialer net.Dialer
	base   kms.BaseRequest
	c      conn

	bindPDU, alterPDU []byte
	hdr               [rpc.HeaderLen]byte
	in                []byte // last answer PDU
	sent              []byte // request payload
	stub              []byte
	pdu               []byte

	lat  []time.Duration
	errs map[string]int
	nOK  atomic.Int64 // progress counters
	nErr atomic.Int64

	mu      sync.Mutex // guards aborted and the deadlines of c.nc
	aborted bool
}

// firstCallID is the call_id of the bind, the alter_context and the first
// request of a connection, as vlmcs numbers them.
const firstCallID = 2

// bindPDUs returns the bind vlmcs sends by default (NDR32, NDR64 and bind
// time feature negotiation, multiplexing) and the alter_context that
// retries NDR32.
func bindPDUs() (bind, alter []byte) {
	elems := []rpc.ContextElem{
		{ID: 0, Abstract: rpc.KMSInterface, Transfer: []rpc.SyntaxID{rpc.NDR32Syntax}},
		{ID: 1, Abstract: rpc.KMSInterface, Transfer: []rpc.SyntaxID{rpc.NDR64Syntax}},
		{ID: 2, Abstract: rpc.KMSInterface, Transfer: []rpc.SyntaxID{rpc.BTFNSyntax}},
	}
	flags := uint8(rpc.FlagFirst | rpc.FlagLast | rpc.FlagConcMpx)
	b := rpc.Bind{Flags: flags, CallID: firstCallID, MaxXmitFrag: 5840, MaxRecvFrag: 5840, Contexts: elems}
	bind, err := b.Encode(nil)
	if err != nil {
		panic(err)
	}
	a := rpc.Bind{Alter: true, Flags: flags, CallID: firstCallID, MaxXmitFrag: 5840, MaxRecvFrag: 5840, Contexts: elems[:1]}
	alter, err = a.Encode(nil)
	if err != nil {
		panic(err)
	}
	return bind, alter
}

// abort makes the connection in use, and every later one, fail at once.
func (w *worker) abort() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.aborted = true
	if w.c.nc != nil {
		w.c.nc.SetDeadline(time.Unix(1, 0))
	}
}

// arm sets the deadline of the current connection unless the run was
// aborted.
func (w *worker) arm() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.aborted {
		return &kindError{KindClosed, errors.New("run cancelled")}
	}
	return w.c.nc.SetDeadline(time.Now().Add(w.r.cfg.Timeout))
}

func (w *worker) closeConn() {
	w.mu.Lock()
	nc := w.c.nc
	w.c = conn{}
	w.mu.Unlock()
	if nc != nil {
		nc.Close()
	}
}

// connect dials the target and binds.
func (w *worker) connect() error {
	nc, err := w.dialer.DialContext(w.r.ctx, "tcp", w.r.cfg.Target)
	if err != nil {
		return &kindError{KindConnect, err}
	}
	w.mu.Lock()
	w.c = conn{nc: nc, callID: firstCallID}
	w.mu.Unlock()
	if err := w.arm(); err != nil {
		return err
	}
	return w.bind()
}

// bind performs the bind and, when NDR32 was refused, the alter_context,
// with the checks of the client emulator.
func (w *worker) bind() error {
	ack, err := w.bindOnce(w.bindPDU, rpc.TypeBindAck, 3)
	if err != nil {
		return err
	}
	for i, want := range [2]rpc.SyntaxID{rpc.NDR32Syntax, rpc.NDR64Syntax} {
		res := ack.Results[i]
		if res.Result == rpc.ResultProvReject {
			continue
		}
		if res.Result != rpc.ResultAcceptance || res.Transfer != want {
			return protocolErr("bind: context %d answered with result %d", i, res.Result)
		}
		if i == 0 {
			w.c.ndr32 = true
		} else {
			w.c.ndr64 = true
		}
	}
	if !w.c.ndr32 {
		aack, err := w.bindOnce(w.alterPDU, rpc.TypeAlterContextResp, 1)
		if err != nil {
			return err
		}
		switch res := aack.Results[0]; {
		case res.Result == rpc.ResultAcceptance && res.Transfer == rpc.NDR32Syntax:
			w.c.ndr32 = true
		case res.Result != rpc.ResultProvReject:
			return protocolErr("alter_context: result %d", res.Result)
		}
	}
	if !w.c.ndr32 && !w.c.ndr64 {
		return protocolErr("host accepted neither NDR32 nor NDR64")
	}
	return nil
}

func (w *worker) bindOnce(pdu []byte, want uint8, n int) (*rpc.BindAck, error) {
	h, err := w.exchange(pdu)
	if err != nil {
		return nil, err
	}
	if err := w.checkAnswer(h, want); err != nil {
		return nil, err
	}
	var ack rpc.BindAck
	if err := ack.Decode(w.in); err != nil {
		return nil, &kindError{KindProtocol, err}
	}
	if len(ack.Results) != n {
		return nil, protocolErr("%d bind results for %d contexts", len(ack.Results), n)
	}
	return &ack, nil
}

// exchange writes one PDU and reads one whole answer PDU into w.in.
func (w *worker) exchange(pdu []byte) (rpc.Header, error) {
	nc := w.c.nc
	if _, err := nc.Write(pdu); err != nil {
		return rpc.Header{}, err
	}
	if _, err := io.ReadFull(nc, w.hdr[:]); err != nil {
		return rpc.Header{}, err
	}
	h, err := rpc.ParseHeader(w.hdr[:])
	if err != nil {
		return h, &kindError{KindProtocol, err}
	}
	w.in = append(w.in[:0], w.hdr[:]...)
	w.in = w.in[:h.FragLength]
	if _, err := io.ReadFull(nc, w.in[rpc.HeaderLen:]); err != nil {
		return h, err
	}
	return h, nil
}

// checkAnswer checks the type and call_id of an answer; a fault is a
// protocol error carrying its status.
func (w *worker) checkAnswer(h rpc.Header, want uint8) error {
	if h.Type == rpc.TypeFault && want != rpc.TypeFault {
		var f rpc.Fault
		if err := f.Decode(w.in); err == nil {
			return protocolErr("fault 0x%08X", f.Status)
		}
	}
	if h.Type != want {
		return protocolErr("PDU type %d, expected %d", h.Type, want)
	}
	// vlmcs accepts call_id 1 from Wine-style hosts.
	if h.CallID != w.c.callID && h.CallID != 1 {
		return protocolErr("call_id %d, expected %d", h.CallID, w.c.callID)
	}
	return nil
}

// nextRequest builds the payload of the next activation into w.sent: the
// fixed request, or the product's request with a fresh client machine ID,
// time stamp and IV.
func (w *worker) nextRequest() {
	if fixed := w.r.cfg.FixedRequest; fixed != nil {
		w.sent = append(w.sent[:0], fixed...)
		return
	}
	b := &w.base
	setRandomCMID(&b.CMID, w.rng.Uint64(), w.rng.Uint64())
	b.ClientTime = wire.FileTimeSeconds(time.Now().Unix())
	var iv [16]byte
	binary.LittleEndian.PutUint64(iv[:8], w.rng.Uint64())
	binary.LittleEndian.PutUint64(iv[8:], w.rng.Uint64())
	w.sent = kms.EncodeRequest(w.sent[:0], b, iv)
}

// activate sends one request on the bound connection and verifies the
// answer: RPC framing, stub, HRESULT and the KMS response itself.
func (w *worker) activate() error {
	if err := w.arm(); err != nil {
		return err
	}
	w.nextRequest()
	c := &w.c
	syn, ctxID := rpc.NDR32, uint16(0)
	if c.calls > 0 && c.ndr64 || !c.ndr32 {
		syn, ctxID = rpc.NDR64, 1
	}
	c.calls++
	callID := c.callID
	w.stub = rpc.AppendRequestStub(w.stub[:0], syn, w.sent)
	req := rpc.Request{Flags: rpc.FlagFirst | rpc.FlagLast, CallID: callID, AllocHint: uint32(len(w.stub)),
		ContextID: ctxID, Stub: w.stub}
	var err error
	if w.pdu, err = req.Encode(w.pdu[:0]); err != nil {
		return &kindError{KindProtocol, err}
	}
	h, err := w.exchange(w.pdu)
	if err != nil {
		return err
	}
	if err := w.checkAnswer(h, rpc.TypeResponse); err != nil {
		return err
	}
	c.callID++
	var resp rpc.Response
	if err := resp.Decode(w.in); err != nil {
		return &kindError{KindProtocol, err}
	}
	if resp.CancelCount != 0 {
		return protocolErr("cancel count %d", resp.CancelCount)
	}
	if resp.ContextID != ctxID {
		return protocolErr("response on context %d, request on %d", resp.ContextID, ctxID)
	}
	st, err := rpc.DecodeResponseStub(resp.Stub, syn)
	if err != nil {
		return &kindError{KindProtocol, err}
	}
	if st.ReturnValue != 0 {
		return refusedError(st.ReturnValue)
	}
	if _, err := kms.VerifyResponse(w.sent, st.Payload); err != nil {
		return &kindError{KindInvalidResponse, err}
	}
	return nil
}
