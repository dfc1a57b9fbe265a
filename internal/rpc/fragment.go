package rpc

import "fmt"

// Reassembler joins the fragments of a multi-fragment request (FIRST … LAST
// with one call_id) up to MaxStub bytes of stub (kms-rpc.md §7). A request
// that is FIRST|LAST passes straight through without copying.
type Reassembler struct {
	active bool
	callID uint32
	ctx    uint16
	opnum  uint16
	buf    []byte
}

// Add takes one decoded request fragment. It returns the complete request
// when the fragment is the last one, or nil while more are expected. The
// returned request's Stub aliases either the fragment or the Reassembler's
// buffer, valid until the next call.
func (a *Reassembler) Add(req *Request) (*Request, error) {
	first, last := req.Flags&FlagFirst != 0, req.Flags&FlagLast != 0
	switch {
	case first && last && !a.active:
		return req, nil
	case first:
		if a.active {
			return nil, fmt.Errorf("%w: new fragmented call %d before call %d ended", ErrMalformed, req.CallID, a.callID)
		}
		a.active, a.callID, a.ctx, a.opnum = true, req.CallID, req.ContextID, req.Opnum
		a.buf = append(a.buf[:0], req.Stub...)
	case !a.active:
		return nil, fmt.Errorf("%w: middle fragment without a first one", ErrMalformed)
	case req.CallID != a.callID:
		return nil, fmt.Errorf("%w: fragment of call %d inside call %d", ErrMalformed, req.CallID, a.callID)
	default:
		if len(a.buf)+len(req.Stub) > MaxStub {
			a.active = false
			return nil, &LimitError{Limit: "reassembled stub", Max: MaxStub, Got: len(a.buf) + len(req.Stub)}
		}
		a.buf = append(a.buf, req.Stub...)
	}
	if len(a.buf) > MaxStub {
		a.active = false
		return nil, &LimitError{Limit: "reassembled stub", Max: MaxStub, Got: len(a.buf)}
	}
	if !last {
		return nil, nil
	}
	a.active = false
	out := *req
	out.Flags |= FlagFirst | FlagLast
	out.ContextID, out.Opnum, out.Stub = a.ctx, a.opnum, a.buf
	return &out, nil
}
