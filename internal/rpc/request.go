package rpc

import (
	"encoding/binary"
	"fmt"

	"kmsd/internal/wire"
)

// Request is a request PDU (PTYPE 0, kms-rpc.md §9.1).
type Request struct {
	Flags     uint8
	CallID    uint32
	AllocHint uint32
	ContextID uint16
	Opnum     uint16
	Object    *wire.GUID // present when PFC_OBJECT_UUID is set
	// Stub aliases the decoded input; copy it to keep it past the next read.
	Stub []byte
}

func (*Request) clientPDU() {}

// Decode parses a whole request PDU whose header was already checked.
func (dst *Request) Decode(src []byte) error {
	r := wire.NewReader(src)
	h := readHeader(&r)
	if h.Type != TypeRequest {
		return fmt.Errorf("%w: type %d is not a request", ErrMalformed, h.Type)
	}
	dst.Flags, dst.CallID = h.Flags, h.CallID
	dst.AllocHint, dst.ContextID, dst.Opnum = r.U32(), r.U16(), r.U16()
	dst.Object = nil
	if h.Flags&FlagObjectUUID != 0 {
		g := r.GUID()
		dst.Object = &g
	}
	end := int(h.FragLength) - int(h.AuthLength)
	if h.AuthLength > 0 {
		end -= 8 // auth verifier header (sec_trailer)
	}
	if err := r.Err(); err != nil {
		return fmt.Errorf("%w: request: %v", ErrShortPDU, err)
	}
	if end > len(src) || end < r.Offset() {
		end = len(src)
	}
	dst.Stub = src[r.Offset():end]
	return nil
}

// Encode appends the PDU to dst.
func (src *Request) Encode(dst []byte) ([]byte, error) {
	start := len(dst)
	flags := src.Flags &^ FlagObjectUUID
	if src.Object != nil {
		flags |= FlagObjectUUID
	}
	dst = appendHeader(dst, TypeRequest, flags, src.CallID)
	dst = binary.LittleEndian.AppendUint32(dst, src.AllocHint)
	dst = binary.LittleEndian.AppendUint16(dst, src.ContextID)
	dst = binary.LittleEndian.AppendUint16(dst, src.Opnum)
	if src.Object != nil {
		dst = append(dst, src.Object[:]...)
	}
	dst = append(dst, src.Stub...)
	return finish(dst, start)
}

// Response is a response PDU (PTYPE 2, kms-rpc.md §9.2).
type Response struct {
	Flags       uint8
	CallID      uint32
	AllocHint   uint32
	ContextID   uint16
	CancelCount uint8
	// Stub aliases the decoded input.
	Stub []byte
}

func (*Response) serverPDU() {}

// Encode appends the PDU to dst.
func (src *Response) Encode(dst []byte) ([]byte, error) {
	start := len(dst)
	dst = appendHeader(dst, TypeResponse, src.Flags, src.CallID)
	dst = binary.LittleEndian.AppendUint32(dst, src.AllocHint)
	dst = binary.LittleEndian.AppendUint16(dst, src.ContextID)
	dst = append(dst, src.CancelCount, 0)
	dst = append(dst, src.Stub...)
	return finish(dst, start)
}

// Decode parses a whole response PDU with the client's header checks.
func (dst *Response) Decode(src []byte) error {
	r := wire.NewReader(src)
	h := readHeader(&r)
	if err := checkAnswerHeader(h); err != nil {
		return err
	}
	if h.Type != TypeResponse {
		return fmt.Errorf("%w: type %d is not a response", ErrMalformed, h.Type)
	}
	dst.Flags, dst.CallID = h.Flags, h.CallID
	dst.AllocHint, dst.ContextID, dst.CancelCount = r.U32(), r.U16(), r.U8()
	r.Skip(1)
	if err := r.Err(); err != nil {
		return fmt.Errorf("%w: response: %v", ErrShortPDU, err)
	}
	dst.Stub = r.Rest()
	return nil
}

// Fault is a fault PDU (PTYPE 3, kms-rpc.md §10).
type Fault struct {
	CallID    uint32
	ContextID uint16
	Status    uint32
}

func (*Fault) serverPDU() {}

// Encode appends the 32-byte fault PDU with flags FIRST|LAST|DID_NOT_EXECUTE.
func (src *Fault) Encode(dst []byte) ([]byte, error) {
	start := len(dst)
	dst = appendHeader(dst, TypeFault, flagsFirstLast|FlagDidNotExec, src.CallID)
	dst = binary.LittleEndian.AppendUint32(dst, 32)
	dst = binary.LittleEndian.AppendUint16(dst, src.ContextID)
	dst = append(dst, 0, 0)
	dst = binary.LittleEndian.AppendUint32(dst, src.Status)
	dst = binary.LittleEndian.AppendUint32(dst, 0)
	return finish(dst, start)
}

// Decode parses a fault PDU.
func (dst *Fault) Decode(src []byte) error {
	r := wire.NewReader(src)
	h := readHeader(&r)
	if h.Type != TypeFault {
		return fmt.Errorf("%w: type %d is not a fault", ErrMalformed, h.Type)
	}
	dst.CallID = h.CallID
	r.Skip(4)
	dst.ContextID = r.U16()
	r.Skip(2)
	dst.Status = r.U32()
	if err := r.Err(); err != nil {
		return fmt.Errorf("%w: fault: %v", ErrShortPDU, err)
	}
	return nil
}
