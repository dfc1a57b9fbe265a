package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"kmsd/internal/rpc"
)

// rpcConn is one RPC association with a KMS host, as vlmcs drives it
// (kms-client.md §4).
type rpcConn struct {
	nc       net.Conn
	timeout  time.Duration
	ndr32    bool // NDR32 context 0 accepted (possibly through alter_context)
	ndr64    bool // NDR64 context 1 accepted
	requests int  // requests sent on this connection
	buf      []byte
	warn     func(string)
}

// Errors a caller branches on.
var (
	ErrConnect  = errors.New("client: cannot connect")
	ErrProtocol = errors.New("client: invalid RPC answer")
)

// bindOptions mirror vlmcs -N, -B and -p.
type bindOptions struct {
	NDR64, BTFN, Multiplex bool
}

// dial connects to addr; network is "tcp", "tcp4" or "tcp6" (vlmcs -i).
// Every address a name resolves to is tried in turn.
func dial(ctx context.Context, network, addr string, timeout time.Duration) (net.Conn, error) {
	if network == "" {
		network = "tcp"
	}
	d := net.Dialer{Timeout: timeout}
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrConnect, addr, err)
	}
	return nc, nil
}

// exchange writes one PDU and reads one whole answer PDU.
func (c *rpcConn) exchange(pdu []byte) ([]byte, rpc.Header, error) {
	c.nc.SetDeadline(time.Now().Add(c.timeout))
	if _, err := c.nc.Write(pdu); err != nil {
		return nil, rpc.Header{}, err
	}
	var hdr [rpc.HeaderLen]byte
	if _, err := io.ReadFull(c.nc, hdr[:]); err != nil {
		return nil, rpc.Header{}, err
	}
	h, err := rpc.ParseHeader(hdr[:])
	if err != nil {
		return nil, h, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	// vlmcs reads up to 16 bytes more than announced to detect sloppy
	// hosts; we read exactly what the header announces.
	c.buf = append(c.buf[:0], hdr[:]...)
	c.buf = append(c.buf, make([]byte, int(h.FragLength)-rpc.HeaderLen)...)
	if _, err := io.ReadFull(c.nc, c.buf[rpc.HeaderLen:]); err != nil {
		return nil, h, err
	}
	return c.buf, h, nil
}

func (c *rpcConn) checkCommon(h rpc.Header, callID uint32, want uint8, bindFlags uint8) error {
	if h.Type == rpc.TypeFault && want != rpc.TypeFault {
		var f rpc.Fault
		if err := f.Decode(c.buf); err == nil {
			return fmt.Errorf("%w: fault 0x%08X", ErrProtocol, f.Status)
		}
	}
	if h.Type != want {
		return fmt.Errorf("%w: expected PDU type %d, got %d", ErrProtocol, want, h.Type)
	}
	if h.CallID != callID {
		if h.CallID != 1 {
			return fmt.Errorf("%w: call id %d, expected %d", ErrProtocol, h.CallID, callID)
		}
		c.warn("host answered with call id 1 (Wine-style RPC)")
	}
	if f := rpc.UnusualFlags(h); f != 0 {
		c.warn(fmt.Sprintf("unexpected RPC flags 0x%02X in answer", f))
	}
	if want == rpc.TypeBindAck {
		if h.Flags&rpc.FlagConcMpx != bindFlags&rpc.FlagConcMpx {
			c.warn("multiplex flag of bind_ack differs from the bind")
		}
	} else if h.Flags&rpc.FlagConcMpx != 0 {
		c.warn("multiplex flag set in an answer other than bind_ack")
	}
	return nil
}

// bind performs bind and, when NDR32 was refused, alter_context.
func (c *rpcConn) bind(o bindOptions, callID uint32) (string, error) {
	flags := uint8(rpc.FlagFirst | rpc.FlagLast)
	if o.Multiplex {
		flags |= rpc.FlagConcMpx
	}
	elems := []rpc.ContextElem{{ID: 0, Abstract: rpc.KMSInterface, Transfer: []rpc.SyntaxID{rpc.NDR32Syntax}}}
	if o.NDR64 {
		elems = append(elems, rpc.ContextElem{ID: 1, Abstract: rpc.KMSInterface, Transfer: []rpc.SyntaxID{rpc.NDR64Syntax}})
	}
	if o.BTFN {
		elems = append(elems, rpc.ContextElem{ID: uint16(len(elems)), Abstract: rpc.KMSInterface, Transfer: []rpc.SyntaxID{rpc.BTFNSyntax}})
	}
	b := rpc.Bind{Flags: flags, CallID: callID, MaxXmitFrag: 5840, MaxRecvFrag: 5840, Contexts: elems}
	ack, err := c.bindOnce(&b)
	if err != nil {
		return "", err
	}
	trace := ""
	btfnAcked := false
	for i, e := range elems {
		res := ack.Results[i]
		t := e.Transfer[0]
		switch {
		case t.IsBTFN():
			if res.Result == rpc.ResultNegotiateAck {
				btfnAcked = true
				trace += "... BTFN "
				if res.Reason != 3 {
					c.warn(fmt.Sprintf("BTFN acknowledged with features 0x%x", res.Reason))
				}
			} else {
				c.checkRejected(res)
			}
		case res.Result == rpc.ResultProvReject:
			c.checkRejected(res)
		default:
			if err := c.checkAccepted(res, t); err != nil {
				return "", err
			}
			if t == rpc.NDR64Syntax {
				c.ndr64 = true
				trace = "... NDR64 " + trace
			} else {
				c.ndr32 = true
			}
		}
	}
	if !c.ndr32 {
		alter := rpc.Bind{Alter: true, Flags: flags, CallID: callID, MaxXmitFrag: 5840, MaxRecvFrag: 5840, Contexts: elems[:1]}
		aack, err := c.bindOnce(&alter)
		if err != nil {
			return "", err
		}
		if aack.Results[0].Result == rpc.ResultAcceptance {
			if err := c.checkAccepted(aack.Results[0], rpc.NDR32Syntax); err != nil {
				return "", err
			}
			c.ndr32 = true
		}
	}
	if c.ndr32 {
		trace += "... NDR32 "
	} else {
		c.warn("host does not support NDR32")
	}
	if !c.ndr32 && !c.ndr64 {
		return "", fmt.Errorf("%w: host accepted neither NDR32 nor NDR64", ErrProtocol)
	}
	if o.NDR64 && o.BTFN && c.ndr64 && !btfnAcked {
		c.warn("host accepted NDR64 but not bind time feature negotiation")
	}
	return trace, nil
}

func (c *rpcConn) bindOnce(b *rpc.Bind) (*rpc.BindAck, error) {
	pdu, err := b.Encode(nil)
	if err != nil {
		return nil, err
	}
	raw, h, err := c.exchange(pdu)
	if err != nil {
		return nil, err
	}
	want := uint8(rpc.TypeBindAck)
	if b.Alter {
		want = rpc.TypeAlterContextResp
	}
	if err := c.checkCommon(h, b.CallID, want, b.Flags); err != nil {
		return nil, err
	}
	var ack rpc.BindAck
	if err := ack.Decode(raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	if len(ack.Results) != len(b.Contexts) {
		return nil, fmt.Errorf("%w: %d results for %d contexts", ErrProtocol, len(ack.Results), len(b.Contexts))
	}
	return &ack, nil
}

func (c *rpcConn) checkRejected(res rpc.Result) {
	if res.Transfer != (rpc.SyntaxID{}) {
		c.warn("rejected context carries a transfer syntax")
	}
	if res.Reason == rpc.ReasonAbstractUnsupported {
		c.warn("transfer syntax does not support KMS")
	} else if res.Reason != rpc.ReasonTransferUnsupported {
		c.warn(fmt.Sprintf("rejected context with reason %d", res.Reason))
	}
}

func (c *rpcConn) checkAccepted(res rpc.Result, offered rpc.SyntaxID) error {
	if res.Result != rpc.ResultAcceptance {
		return fmt.Errorf("%w: context result %d", ErrProtocol, res.Result)
	}
	if res.Transfer != offered {
		return fmt.Errorf("%w: accepted transfer syntax differs from the offer", ErrProtocol)
	}
	if res.Reason != 0 {
		c.warn(fmt.Sprintf("accepted context with reason %d", res.Reason))
	}
	return nil
}

// call sends one KMS request and returns the payload or the HRESULT.
func (c *rpcConn) call(payload []byte, callID uint32) ([]byte, uint32, rpc.Syntax, error) {
	syn, ctxID := rpc.NDR32, uint16(0)
	if c.requests > 0 && c.ndr64 || !c.ndr32 {
		syn, ctxID = rpc.NDR64, 1
	}
	c.requests++
	stub := rpc.AppendRequestStub(nil, syn, payload)
	req := rpc.Request{Flags: rpc.FlagFirst | rpc.FlagLast, CallID: callID, AllocHint: uint32(len(stub)), ContextID: ctxID, Stub: stub}
	pdu, err := req.Encode(nil)
	if err != nil {
		return nil, 0, syn, err
	}
	raw, h, err := c.exchange(pdu)
	if err != nil {
		return nil, 0, syn, err
	}
	if err := c.checkCommon(h, callID, rpc.TypeResponse, 0); err != nil {
		return nil, 0, syn, err
	}
	var resp rpc.Response
	if err := resp.Decode(raw); err != nil {
		return nil, 0, syn, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	if resp.CancelCount != 0 {
		return nil, 0, syn, fmt.Errorf("%w: cancel count %d", ErrProtocol, resp.CancelCount)
	}
	if resp.ContextID != ctxID {
		return nil, 0, syn, fmt.Errorf("%w: response on context %d, request on %d", ErrProtocol, resp.ContextID, ctxID)
	}
	if int(resp.AllocHint) != len(resp.Stub) {
		c.warn(fmt.Sprintf("alloc_hint %d differs from the stub length %d", resp.AllocHint, len(resp.Stub)))
	}
	st, err := rpc.DecodeResponseStub(resp.Stub, syn)
	if err != nil {
		return nil, 0, syn, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	if st.PaddingNonZero {
		c.warn("non-zero padding bytes in the response")
	}
	return append([]byte(nil), st.Payload...), st.ReturnValue, syn, nil
}

// closedByPeer reports whether the host has closed the connection, without
// consuming data (vlmcs checks this before every request after the first).
func (c *rpcConn) closedByPeer() bool {
	c.nc.SetReadDeadline(time.Now().Add(time.Millisecond))
	var b [1]byte
	n, err := c.nc.Read(b[:])
	c.nc.SetReadDeadline(time.Time{})
	if n > 0 {
		return false // unexpected data; the next exchange will fail on it
	}
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}
