package rpc

import (
	"bytes"
	"encoding/binary"

	"kmsd/internal/wire"
)

// SyntaxID is a p_syntax_id_t: a GUID and a version whose low 16 bits are
// the major and high 16 bits the minor version (kms-rpc.md §3).
type SyntaxID struct {
	UUID    wire.GUID
	Version uint32
}

// Well-known syntaxes (kms-rpc.md §3).
var (
	KMSInterface = SyntaxID{wire.MustGUID("51c82175-844e-4750-b0d8-ec255555bc06"), 1}
	NDR32Syntax  = SyntaxID{wire.MustGUID("8a885d04-1ceb-11c9-9fe8-08002b104860"), 2}
	NDR64Syntax  = SyntaxID{wire.MustGUID("71710533-beba-4937-8319-b5dbef9ccc36"), 1}
	// BTFNSyntax is bind time feature negotiation with bitmask 0x03, as
	// Windows clients and vlmcs offer it.
	BTFNSyntax = SyntaxID{wire.MustGUID("6cb71c2c-9812-4540-0300-000000000000"), 1}
)

// btfnPrefix identifies a BTFN syntax by its first 8 bytes.
var btfnPrefix = []byte{0x2c, 0x1c, 0xb7, 0x6c, 0x12, 0x98, 0x40, 0x45}

// IsBTFN reports whether s is a bind time feature negotiation syntax.
func (s SyntaxID) IsBTFN() bool { return bytes.Equal(s.UUID[:8], btfnPrefix) }

// BTFNBits returns the feature bitmask byte of a BTFN syntax.
func (s SyntaxID) BTFNBits() uint8 { return s.UUID[8] }

// Syntax is the transfer syntax accepted for a presentation context.
type Syntax uint8

// Transfer syntaxes.
const (
	SyntaxNone Syntax = iota
	NDR32
	NDR64
)

func (s Syntax) String() string {
	switch s {
	case NDR32:
		return "NDR32"
	case NDR64:
		return "NDR64"
	}
	return "none"
}

func readSyntax(r *wire.Reader) SyntaxID {
	return SyntaxID{UUID: r.GUID(), Version: r.U32()}
}

func appendSyntax(dst []byte, s SyntaxID) []byte {
	dst = append(dst, s.UUID[:]...)
	return binary.LittleEndian.AppendUint32(dst, s.Version)
}
