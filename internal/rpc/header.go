// Package rpc implements the subset of connection-oriented DCE/RPC that KMS
// uses (shared/spec/kms-rpc.md): the common header, bind and alter_context
// with their answers, request, response, fault and bind_nak PDUs, the
// presentation-context negotiation vlmcsd performs, and the NDR32/NDR64
// stubs of the single KMS operation. It reads and writes bytes only.
package rpc

import (
	"encoding/binary"
	"errors"
	"fmt"

	"kmsd/internal/wire"
)

// PDU types (kms-rpc.md §2).
const (
	TypeRequest          = 0
	TypeResponse         = 2
	TypeFault            = 3
	TypeBind             = 11
	TypeBindAck          = 12
	TypeBindNak          = 13
	TypeAlterContext     = 14
	TypeAlterContextResp = 15
)

// pfc_flags bits (kms-rpc.md §2).
const (
	FlagFirst        = 0x01
	FlagLast         = 0x02
	FlagPendingCncl  = 0x04
	FlagReserved08   = 0x08
	FlagConcMpx      = 0x10
	FlagDidNotExec   = 0x20
	FlagMaybe        = 0x40
	FlagObjectUUID   = 0x80
	flagsFirstLast   = FlagFirst | FlagLast
	flagsUnusualMask = FlagPendingCncl | FlagReserved08 | FlagDidNotExec | FlagMaybe | FlagObjectUUID
)

// HeaderLen is the size of the common header.
const HeaderLen = 16

// MaxPDU is the largest PDU this package accepts (kms-rpc.md §7 recommends
// accepting fragments up to the negotiated max_recv_frag, 5840).
const MaxPDU = 5840

// MaxStub caps the reassembled stub of a multi-fragment request.
const MaxStub = 8192

// Sentinel errors; callers branch on them with errors.Is.
var (
	ErrShortPDU    = errors.New("rpc: truncated PDU")
	ErrBadVersion  = errors.New("rpc: not DCE/RPC version 5")
	ErrBadDrep     = errors.New("rpc: unsupported data representation")
	ErrUnknownType = errors.New("rpc: unsupported PDU type")
	ErrMalformed   = errors.New("rpc: malformed PDU")
)

// LimitError reports input past a fixed limit.
type LimitError struct {
	Limit string
	Max   int
	Got   int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("rpc: %s %d exceeds limit %d", e.Limit, e.Got, e.Max)
}

// FaultError is a condition answered with a fault PDU carrying Status.
type FaultError struct {
	Status uint32
	Reason string
}

func (e *FaultError) Error() string {
	return fmt.Sprintf("rpc: fault 0x%08X: %s", e.Status, e.Reason)
}

// Fault status codes (kms-rpc.md §10).
const (
	StatusUnknownInterface = 0x1C010003 // nca_s_unk_if
	StatusOpRangeError     = 0x1C010002 // nca_s_op_rng_error
	StatusProtoError       = 0x1C01000B // nca_s_proto_error
	StatusBadStubData      = 0x000006F7
)

// Header is the 16-byte common header (kms-rpc.md §2).
type Header struct {
	Version      uint8
	VersionMinor uint8
	Type         uint8
	Flags        uint8
	Drep         [4]byte
	FragLength   uint16
	AuthLength   uint16
	CallID       uint32
}

// DrepLE is the data representation every KMS peer uses.
var DrepLE = [4]byte{0x10, 0, 0, 0}

// ParseHeader decodes and checks the common header at the start of b. It
// checks the version and the fragment length bounds only; the type is
// checked by the caller.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderLen {
		return h, fmt.Errorf("%w: %d bytes of header", ErrShortPDU, len(b))
	}
	h.Version, h.VersionMinor, h.Type, h.Flags = b[0], b[1], b[2], b[3]
	copy(h.Drep[:], b[4:8])
	h.FragLength = binary.LittleEndian.Uint16(b[8:])
	h.AuthLength = binary.LittleEndian.Uint16(b[10:])
	h.CallID = binary.LittleEndian.Uint32(b[12:])
	if h.Version != 5 {
		return h, fmt.Errorf("%w: %d.%d", ErrBadVersion, h.Version, h.VersionMinor)
	}
	if h.FragLength < HeaderLen {
		return h, fmt.Errorf("%w: frag_length %d", ErrMalformed, h.FragLength)
	}
	if int(h.FragLength) > MaxPDU {
		return h, &LimitError{Limit: "frag_length", Max: MaxPDU, Got: int(h.FragLength)}
	}
	return h, nil
}

// appendHeader appends a header with frag_length 0; finish patches it.
func appendHeader(dst []byte, typ, flags uint8, callID uint32) []byte {
	dst = append(dst, 5, 0, typ, flags, 0x10, 0, 0, 0, 0, 0, 0, 0)
	return binary.LittleEndian.AppendUint32(dst, callID)
}

// finish writes the frag_length of the PDU that starts at start.
func finish(dst []byte, start int) ([]byte, error) {
	n := len(dst) - start
	if n > 0xFFFF {
		return dst, &LimitError{Limit: "PDU size", Max: 0xFFFF, Got: n}
	}
	binary.LittleEndian.PutUint16(dst[start+8:], uint16(n))
	return dst, nil
}

// checkAnswerHeader applies the header checks a client makes on every answer
// (kms-client.md §4): version 5.0, drep, no auth, FIRST and LAST.
func checkAnswerHeader(h Header) error {
	switch {
	case h.Version != 5 || h.VersionMinor != 0:
		return fmt.Errorf("%w: answer is version %d.%d", ErrBadVersion, h.Version, h.VersionMinor)
	case h.Drep != DrepLE:
		return fmt.Errorf("%w: % x", ErrBadDrep, h.Drep)
	case h.AuthLength != 0:
		return fmt.Errorf("%w: auth_length %d", ErrMalformed, h.AuthLength)
	case h.Flags&flagsFirstLast != flagsFirstLast:
		return fmt.Errorf("%w: answer lacks FIRST/LAST (flags 0x%02x)", ErrMalformed, h.Flags)
	}
	return nil
}

// UnusualFlags returns the flag bits a client warns about (0x04, 0x08,
// 0x20, 0x40, 0x80), excluding DID_NOT_EXECUTE on faults.
func UnusualFlags(h Header) uint8 {
	f := h.Flags & flagsUnusualMask
	if h.Type == TypeFault {
		f &^= FlagDidNotExec
	}
	return f
}

func readHeader(r *wire.Reader) Header {
	var h Header
	h.Version, h.VersionMinor, h.Type, h.Flags = r.U8(), r.U8(), r.U8(), r.U8()
	copy(h.Drep[:], r.Bytes(4))
	h.FragLength, h.AuthLength, h.CallID = r.U16(), r.U16(), r.U32()
	return h
}

// ClientPDU is a PDU a client sends; ServerPDU one a host sends. The marker
// methods keep a host from sending a client's PDU by mistake (pgproto3's
// FrontendMessage/BackendMessage idea).
type (
	ClientPDU interface {
		clientPDU()
		Encode(dst []byte) ([]byte, error)
	}
	ServerPDU interface {
		serverPDU()
		Encode(dst []byte) ([]byte, error)
	}
)

var (
	_ ClientPDU = (*Bind)(nil)
	_ ClientPDU = (*Request)(nil)
	_ ServerPDU = (*BindAck)(nil)
	_ ServerPDU = (*BindNak)(nil)
	_ ServerPDU = (*Response)(nil)
	_ ServerPDU = (*Fault)(nil)
)
