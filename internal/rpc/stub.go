package rpc

import (
	"encoding/binary"
	"fmt"

	"kmsd/internal/wire"
)

// referentID is the non-null unique pointer value Microsoft's NDR engine
// writes first (kms-rpc.md §9.2).
const referentID = 0x00020000

// RequestPayload extracts the KMS request from the stub of a
// RequestActivation call (kms-rpc.md §9.1). Both NDR length fields and
// alignment bytes are ignored, as vlmcsd ignores them; the payload is the
// rest of the stub.
func RequestPayload(stub []byte, s Syntax) ([]byte, error) {
	hdr := 8
	if s == NDR64 {
		hdr = 16
	}
	if len(stub) < hdr {
		return nil, fmt.Errorf("%w: stub of %d bytes", ErrShortPDU, len(stub))
	}
	return stub[hdr:], nil
}

// AppendRequestStub appends the NDR stub of a RequestActivation call.
func AppendRequestStub(dst []byte, s Syntax, payload []byte) []byte {
	n := uint32(len(payload))
	dst = binary.LittleEndian.AppendUint32(dst, n)
	if s == NDR64 {
		dst = binary.LittleEndian.AppendUint32(dst, 0)
		dst = binary.LittleEndian.AppendUint64(dst, uint64(n))
	} else {
		dst = binary.LittleEndian.AppendUint32(dst, n)
	}
	return append(dst, payload...)
}

// ResponseStubLen is the size of a success stub for an m-byte payload.
func ResponseStubLen(s Syntax, m int) int {
	head := 12
	if s == NDR64 {
		head = 24
	}
	return head + m + (4-m%4)%4 + 4
}

// AppendResponseStub appends the stub of a successful RequestActivation
// answer: size, referent, conformant array, padding, return value 0.
func AppendResponseStub(dst []byte, s Syntax, payload []byte) []byte {
	m := uint32(len(payload))
	dst = binary.LittleEndian.AppendUint32(dst, m)
	if s == NDR64 {
		dst = binary.LittleEndian.AppendUint32(dst, 0)
		dst = binary.LittleEndian.AppendUint64(dst, referentID)
		dst = binary.LittleEndian.AppendUint64(dst, uint64(m))
	} else {
		dst = binary.LittleEndian.AppendUint32(dst, referentID)
		dst = binary.LittleEndian.AppendUint32(dst, m)
	}
	dst = append(dst, payload...)
	for i := 0; i < (4-len(payload)%4)%4; i++ {
		dst = append(dst, 0)
	}
	return binary.LittleEndian.AppendUint32(dst, 0)
}

// AppendRefusalStub appends the stub of a refused call: null pointer and
// the HRESULT as return value (kms-rpc.md §9.3).
func AppendRefusalStub(dst []byte, s Syntax, hresult uint32) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, 0)
	if s == NDR64 {
		dst = binary.LittleEndian.AppendUint32(dst, 0)
		dst = binary.LittleEndian.AppendUint64(dst, 0)
	} else {
		dst = binary.LittleEndian.AppendUint32(dst, 0)
	}
	return binary.LittleEndian.AppendUint32(dst, hresult)
}

// ResponseStub is a decoded RequestActivation answer.
type ResponseStub struct {
	Payload     []byte // aliases the input; nil for a refusal
	ReturnValue uint32
	// Warnings a client reports without failing (kms-client.md §4).
	PaddingNonZero bool
}

// DecodeResponseStub parses the stub of a RequestActivation answer with the
// checks vlmcs makes: equal size fields and the return value at the
// 4-aligned position after the payload.
func DecodeResponseStub(stub []byte, s Syntax) (ResponseStub, error) {
	var out ResponseStub
	r := wire.NewReader(stub)
	size := r.U32()
	var ref, count uint64
	if s == NDR64 {
		r.Skip(4)
		ref = r.U64()
	} else {
		ref = uint64(r.U32())
	}
	if err := r.Err(); err != nil {
		return out, fmt.Errorf("%w: response stub: %v", ErrShortPDU, err)
	}
	if ref == 0 {
		out.ReturnValue = r.U32()
		if err := r.Err(); err != nil {
			return out, fmt.Errorf("%w: refusal stub: %v", ErrShortPDU, err)
		}
		return out, nil
	}
	if s == NDR64 {
		count = r.U64()
	} else {
		count = uint64(r.U32())
	}
	if err := r.Err(); err != nil {
		return out, fmt.Errorf("%w: response stub: %v", ErrShortPDU, err)
	}
	if count != uint64(size) {
		return out, fmt.Errorf("%w: response sizes differ (%d, %d)", ErrMalformed, size, count)
	}
	out.Payload = r.Bytes(int(size))
	pad := (4 - int(size)%4) % 4
	for _, b := range r.Bytes(pad) {
		if b != 0 {
			out.PaddingNonZero = true
		}
	}
	out.ReturnValue = r.U32()
	if err := r.Err(); err != nil {
		return out, fmt.Errorf("%w: response payload: %v", ErrShortPDU, err)
	}
	return out, nil
}
