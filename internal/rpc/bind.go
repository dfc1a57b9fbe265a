package rpc

import (
	"encoding/binary"
	"fmt"
	"strconv"

	"kmsd/internal/wire"
)

// ContextElem is one presentation context element of a bind or
// alter_context (kms-rpc.md §4).
type ContextElem struct {
	ID       uint16
	Abstract SyntaxID
	Transfer []SyntaxID
}

// Bind is a bind (PTYPE 11) or alter_context (PTYPE 14) PDU; Alter tells
// which (the bodies are identical, C706 12.6.4.1/12.6.4.3).
type Bind struct {
	Alter        bool
	Flags        uint8
	CallID       uint32
	MaxXmitFrag  uint16
	MaxRecvFrag  uint16
	AssocGroupID uint32
	Contexts     []ContextElem
}

func (*Bind) clientPDU() {}

// Decode parses a whole bind or alter_context PDU. n_context_elem is read
// as one byte and the three reserved bytes after it are ignored
// (kms-rpc.md §4 allows either this or closing); element lists that do not
// fit the PDU are malformed.
func (dst *Bind) Decode(src []byte) error {
	r := wire.NewReader(src)
	h := readHeader(&r)
	if h.Type != TypeBind && h.Type != TypeAlterContext {
		return fmt.Errorf("%w: type %d is not a bind", ErrMalformed, h.Type)
	}
	dst.Alter = h.Type == TypeAlterContext
	dst.Flags, dst.CallID = h.Flags, h.CallID
	dst.MaxXmitFrag, dst.MaxRecvFrag, dst.AssocGroupID = r.U16(), r.U16(), r.U32()
	n := int(r.U8())
	r.Skip(3)
	if err := r.Err(); err != nil {
		return fmt.Errorf("%w: bind: %v", ErrShortPDU, err)
	}
	// Each element needs at least 24 bytes, which bounds n by the PDU size.
	if n*24 > r.Len() {
		return fmt.Errorf("%w: %d context elements do not fit in %d bytes", ErrMalformed, n, r.Len())
	}
	dst.Contexts = make([]ContextElem, n)
	for i := range dst.Contexts {
		c := &dst.Contexts[i]
		c.ID = r.U16()
		nts := int(r.U8())
		r.Skip(1)
		c.Abstract = readSyntax(&r)
		if nts*20 > r.Len() {
			return fmt.Errorf("%w: context %d: %d transfer syntaxes do not fit", ErrMalformed, i, nts)
		}
		c.Transfer = make([]SyntaxID, nts)
		for j := range c.Transfer {
			c.Transfer[j] = readSyntax(&r)
		}
	}
	if err := r.Err(); err != nil {
		return fmt.Errorf("%w: bind: %v", ErrShortPDU, err)
	}
	return nil
}

// Encode appends the PDU to dst.
func (src *Bind) Encode(dst []byte) ([]byte, error) {
	if len(src.Contexts) > 255 {
		return dst, &LimitError{Limit: "context elements", Max: 255, Got: len(src.Contexts)}
	}
	start := len(dst)
	typ := uint8(TypeBind)
	if src.Alter {
		typ = TypeAlterContext
	}
	dst = appendHeader(dst, typ, src.Flags, src.CallID)
	dst = binary.LittleEndian.AppendUint16(dst, src.MaxXmitFrag)
	dst = binary.LittleEndian.AppendUint16(dst, src.MaxRecvFrag)
	dst = binary.LittleEndian.AppendUint32(dst, src.AssocGroupID)
	dst = append(dst, uint8(len(src.Contexts)), 0, 0, 0)
	for _, c := range src.Contexts {
		if len(c.Transfer) > 255 {
			return dst, &LimitError{Limit: "transfer syntaxes", Max: 255, Got: len(c.Transfer)}
		}
		dst = binary.LittleEndian.AppendUint16(dst, c.ID)
		dst = append(dst, uint8(len(c.Transfer)), 0)
		dst = appendSyntax(dst, c.Abstract)
		for _, t := range c.Transfer {
			dst = appendSyntax(dst, t)
		}
	}
	return finish(dst, start)
}

// Result codes of a bind_ack result (kms-rpc.md §5.1).
const (
	ResultAcceptance   = 0
	ResultUserReject   = 1
	ResultProvReject   = 2
	ResultNegotiateAck = 3
)

// Provider reject reasons (kms-rpc.md §5.1).
const (
	ReasonNotSpecified        = 0
	ReasonAbstractUnsupported = 1
	ReasonTransferUnsupported = 2
)

// Result is one p_result_t of a bind_ack or alter_context_resp.
type Result struct {
	Result   uint16
	Reason   uint16
	Transfer SyntaxID
}

// BindAck is a bind_ack (PTYPE 12) or alter_context_resp (PTYPE 15).
type BindAck struct {
	Alter        bool
	Flags        uint8
	CallID       uint32
	MaxXmitFrag  uint16
	MaxRecvFrag  uint16
	AssocGroupID uint32
	SecAddr      string // port as decimal text; empty in alter_context_resp
	Results      []Result
}

func (*BindAck) serverPDU() {}

// Encode appends the PDU to dst. The secondary address carries its NUL
// terminator; padding bytes are zero (kms-rpc.md §5.1).
func (src *BindAck) Encode(dst []byte) ([]byte, error) {
	start := len(dst)
	typ := uint8(TypeBindAck)
	if src.Alter {
		typ = TypeAlterContextResp
	}
	dst = appendHeader(dst, typ, src.Flags, src.CallID)
	dst = binary.LittleEndian.AppendUint16(dst, src.MaxXmitFrag)
	dst = binary.LittleEndian.AppendUint16(dst, src.MaxRecvFrag)
	dst = binary.LittleEndian.AppendUint32(dst, src.AssocGroupID)
	if src.SecAddr == "" {
		dst = append(dst, 0, 0)
	} else {
		dst = binary.LittleEndian.AppendUint16(dst, uint16(len(src.SecAddr)+1))
		dst = append(dst, src.SecAddr...)
		dst = append(dst, 0)
	}
	for (len(dst)-start)%4 != 0 {
		dst = append(dst, 0)
	}
	dst = append(dst, uint8(len(src.Results)), 0, 0, 0)
	for _, res := range src.Results {
		dst = binary.LittleEndian.AppendUint16(dst, res.Result)
		dst = binary.LittleEndian.AppendUint16(dst, res.Reason)
		dst = appendSyntax(dst, res.Transfer)
	}
	return finish(dst, start)
}

// Decode parses a whole bind_ack or alter_context_resp and applies the
// header checks a client makes.
func (dst *BindAck) Decode(src []byte) error {
	r := wire.NewReader(src)
	h := readHeader(&r)
	if err := checkAnswerHeader(h); err != nil {
		return err
	}
	if h.Type != TypeBindAck && h.Type != TypeAlterContextResp {
		return fmt.Errorf("%w: type %d is not a bind answer", ErrMalformed, h.Type)
	}
	dst.Alter = h.Type == TypeAlterContextResp
	dst.Flags, dst.CallID = h.Flags, h.CallID
	dst.MaxXmitFrag, dst.MaxRecvFrag, dst.AssocGroupID = r.U16(), r.U16(), r.U32()
	l := int(r.U16())
	addr := r.Bytes(l)
	if l > 0 && addr != nil {
		if i := indexNUL(addr); i >= 0 {
			addr = addr[:i]
		}
		dst.SecAddr = string(addr)
	} else {
		dst.SecAddr = ""
	}
	if pad := (4 - r.Offset()%4) % 4; pad > 0 {
		r.Skip(pad)
	}
	n := int(r.U8())
	r.Skip(3)
	if err := r.Err(); err != nil {
		return fmt.Errorf("%w: bind answer: %v", ErrShortPDU, err)
	}
	if n*24 > r.Len() {
		return fmt.Errorf("%w: %d results do not fit", ErrMalformed, n)
	}
	dst.Results = make([]Result, n)
	for i := range dst.Results {
		dst.Results[i] = Result{Result: r.U16(), Reason: r.U16(), Transfer: readSyntax(&r)}
	}
	return r.Err()
}

func indexNUL(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}

// Negotiation holds the host switches that decide bind results.
type Negotiation struct {
	NDR64 bool // accept NDR64 (vlmcsd -N)
	BTFN  bool // acknowledge bind time feature negotiation (vlmcsd -B)
}

// Accepted is a context accepted by a bind or alter_context, with the
// transfer syntax requests on it use.
type Accepted struct {
	ID     uint16
	Syntax Syntax
}

// Negotiate computes the result of every element of a bind or
// alter_context exactly as vlmcsd does (kms-rpc.md §5.2), and the contexts
// later requests may use. Elements offering several transfer syntaxes are
// answered with the first syntax that is accepted or acknowledged.
//
// The contexts list also holds NDR32 elements of the KMS interface that were
// rejected only because NDR64 won, so a request on them is served as NDR32
// as vlmcsd serves it (kms-rpc.md §5.3).
func (n Negotiation) Negotiate(elems []ContextElem, results []Result, contexts []Accepted) ([]Result, []Accepted) {
	ndr64Possible := false
	if n.NDR64 {
		for _, e := range elems {
			for _, t := range e.Transfer {
				if t.UUID == NDR64Syntax.UUID {
					ndr64Possible = true
				}
			}
		}
	}
	for _, e := range elems {
		ifOK := e.Abstract.UUID == KMSInterface.UUID
		var res Result
		var syn Syntax
		lenientNDR32 := false
		for i, t := range e.Transfer {
			r, s := n.decide(ifOK, t, ndr64Possible)
			if i == 0 || r.Result == ResultAcceptance || r.Result == ResultNegotiateAck {
				res, syn = r, s
			}
			if ifOK && t.UUID == NDR32Syntax.UUID {
				lenientNDR32 = true
			}
			if r.Result == ResultAcceptance || r.Result == ResultNegotiateAck {
				break
			}
		}
		if len(e.Transfer) == 0 {
			res = Result{Result: ResultProvReject, Reason: ReasonTransferUnsupported}
		}
		results = append(results, res)
		switch {
		case syn != SyntaxNone:
			contexts = append(contexts, Accepted{ID: e.ID, Syntax: syn})
		case lenientNDR32 && ndr64Possible:
			contexts = append(contexts, Accepted{ID: e.ID, Syntax: NDR32})
		}
	}
	return results, contexts
}

func (n Negotiation) decide(ifOK bool, t SyntaxID, ndr64Possible bool) (Result, Syntax) {
	switch {
	case ifOK && t.UUID == NDR32Syntax.UUID && !ndr64Possible:
		return Result{Result: ResultAcceptance, Transfer: NDR32Syntax}, NDR32
	case ifOK && t.UUID == NDR64Syntax.UUID && ndr64Possible:
		return Result{Result: ResultAcceptance, Transfer: NDR64Syntax}, NDR64
	case t.IsBTFN() && n.BTFN:
		return Result{Result: ResultNegotiateAck, Reason: uint16(t.BTFNBits() & 3)}, SyntaxNone
	}
	reason := uint16(ReasonAbstractUnsupported)
	if (t.UUID == NDR64Syntax.UUID && !n.NDR64) || t.IsBTFN() || ifOK {
		reason = ReasonTransferUnsupported
	}
	return Result{Result: ResultProvReject, Reason: reason}, SyntaxNone
}

// AckFlags returns the flags of the answer to a bind or alter_context:
// FIRST|LAST, plus CONC_MPX on a bind_ack when the bind had it
// (kms-rpc.md §5.4).
func AckFlags(b *Bind) uint8 {
	if b.Alter {
		return flagsFirstLast
	}
	return flagsFirstLast | b.Flags&FlagConcMpx
}

// PortString is the secondary address text for a port.
func PortString(port int) string { return strconv.Itoa(port) }

// BindNak is a bind_nak (PTYPE 13, kms-rpc.md §8).
type BindNak struct {
	CallID uint32
	Reason uint16
}

func (*BindNak) serverPDU() {}

// Encode appends the PDU, listing version 5.0 as supported.
func (src *BindNak) Encode(dst []byte) ([]byte, error) {
	start := len(dst)
	dst = appendHeader(dst, TypeBindNak, flagsFirstLast, src.CallID)
	dst = binary.LittleEndian.AppendUint16(dst, src.Reason)
	dst = append(dst, 1, 5, 0)
	return finish(dst, start)
}
