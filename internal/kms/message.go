// Package kms implements the KMS activation messages of protocol versions
// 4, 5 and 6 (shared/spec/kms-messages.md) and the host's decisions
// (shared/spec/kms-server.md): validation, whitelisting, the time check,
// client counting, ePIDs and HWIDs. It does no I/O; randomness and time come
// in through an Env.
package kms

import (
	"encoding/binary"
	"errors"
	"fmt"

	"kmsd/internal/wire"
)

// Version is a KMS protocol version: MinorVer then MajorVer on the wire.
type Version struct {
	Minor, Major uint16
}

func (v Version) String() string {
	switch v {
	case Version{Major: 4}:
		return "4.0"
	case Version{Major: 5}:
		return "5.0"
	case Version{Major: 6}:
		return "6.0"
	}
	return fmt.Sprintf("%d.%d", v.Major, v.Minor)
}

// Supported reports whether v is 4.0, 5.0 or 6.0.
func (v Version) Supported() bool { return v.Minor == 0 && v.Major >= 4 && v.Major <= 6 }

func readVersion(r *wire.Reader) Version {
	minor := r.U16()
	return Version{Minor: minor, Major: r.U16()}
}

func appendVersion(dst []byte, v Version) []byte {
	dst = binary.LittleEndian.AppendUint16(dst, v.Minor)
	return binary.LittleEndian.AppendUint16(dst, v.Major)
}

// Sizes (kms-messages.md §11).
const (
	BaseRequestSize = 236
	V4RequestSize   = 252
	V6RequestSize   = 260
	MaxPIDSize      = 128
	IVSize          = 16
	HWIDSize        = 8
)

// Sentinel errors.
var (
	ErrUnsupportedVersion = errors.New("kms: unsupported protocol version")
	ErrShort              = errors.New("kms: message too short")
	ErrInvalidResponse    = errors.New("kms: invalid response")
)

// FieldError reports a malformed field.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return "kms: " + e.Field + ": " + e.Reason }

// BaseRequest is the 236-byte request every version carries
// (kms-messages.md §2).
type BaseRequest struct {
	Version           Version
	VMInfo            uint32
	LicenseStatus     uint32
	BindingExpiration uint32
	AppID             wire.GUID
	ActID             wire.GUID
	KMSID             wire.GUID
	CMID              wire.GUID
	NPolicy           uint32
	ClientTime        uint64
	CMIDPrev          wire.GUID
	// Workstation is the raw 64-unit UTF-16LE name field.
	Workstation [128]byte
}

// Decode parses the first 236 bytes of src.
func (dst *BaseRequest) Decode(src []byte) error {
	if len(src) < BaseRequestSize {
		return fmt.Errorf("%w: base request of %d bytes", ErrShort, len(src))
	}
	r := wire.NewReader(src)
	dst.Version = readVersion(&r)
	dst.VMInfo, dst.LicenseStatus, dst.BindingExpiration = r.U32(), r.U32(), r.U32()
	dst.AppID, dst.ActID, dst.KMSID, dst.CMID = r.GUID(), r.GUID(), r.GUID(), r.GUID()
	dst.NPolicy, dst.ClientTime, dst.CMIDPrev = r.U32(), r.U64(), r.GUID()
	copy(dst.Workstation[:], r.Bytes(128))
	// The length was checked above, so the reader cannot have failed;
	// returning nil (not r.Err()) also keeps src off the heap.
	return nil
}

// Encode appends the 236 bytes.
func (src *BaseRequest) Encode(dst []byte) []byte {
	dst = appendVersion(dst, src.Version)
	dst = binary.LittleEndian.AppendUint32(dst, src.VMInfo)
	dst = binary.LittleEndian.AppendUint32(dst, src.LicenseStatus)
	dst = binary.LittleEndian.AppendUint32(dst, src.BindingExpiration)
	dst = append(dst, src.AppID[:]...)
	dst = append(dst, src.ActID[:]...)
	dst = append(dst, src.KMSID[:]...)
	dst = append(dst, src.CMID[:]...)
	dst = binary.LittleEndian.AppendUint32(dst, src.NPolicy)
	dst = binary.LittleEndian.AppendUint64(dst, src.ClientTime)
	dst = append(dst, src.CMIDPrev[:]...)
	return append(dst, src.Workstation[:]...)
}

// WorkstationName decodes the name up to its first NUL.
func (src *BaseRequest) WorkstationName() string { return wire.UTF16String(src.Workstation[:]) }

// SetWorkstationName stores name, cut to 63 UTF-16 units; it reports
// whether the name was cut.
func (dst *BaseRequest) SetWorkstationName(name string) (truncated bool) {
	n := wire.PutUTF16(dst.Workstation[:], name)
	return n < wire.UTF16Len(name)
}

// BaseResponse is the base response (kms-messages.md §3).
type BaseResponse struct {
	Version            Version
	EPID               string
	CMID               wire.GUID
	ClientTime         uint64
	Count              uint32
	ActivationInterval uint32
	RenewalInterval    uint32
}

// appendBaseResponse appends the base response with a pre-encoded ePID
// (UTF-16LE with its NUL), so the hot path converts nothing.
func appendBaseResponse(dst []byte, v Version, epid []byte, req *BaseRequest, count, act, ren uint32) []byte {
	dst = appendVersion(dst, v)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(epid)))
	dst = append(dst, epid...)
	dst = append(dst, req.CMID[:]...)
	dst = binary.LittleEndian.AppendUint64(dst, req.ClientTime)
	dst = binary.LittleEndian.AppendUint32(dst, count)
	dst = binary.LittleEndian.AppendUint32(dst, act)
	return binary.LittleEndian.AppendUint32(dst, ren)
}

// decodeBaseResponse parses a base response and applies the ePID length
// rules of kms-messages.md §3. It returns the size consumed.
func decodeBaseResponse(dst *BaseResponse, src []byte) (int, error) {
	r := wire.NewReader(src)
	dst.Version = readVersion(&r)
	p := r.U32()
	if err := r.Err(); err != nil {
		return 0, fmt.Errorf("%w: base response: %v", ErrShort, err)
	}
	if p > MaxPIDSize || p%2 != 0 || p < 2 {
		return 0, &FieldError{Field: "PIDSize", Reason: fmt.Sprintf("%d is not an even size of 2..%d", p, MaxPIDSize)}
	}
	pid := r.Bytes(int(p))
	dst.CMID, dst.ClientTime = r.GUID(), r.U64()
	dst.Count, dst.ActivationInterval, dst.RenewalInterval = r.U32(), r.U32(), r.U32()
	if err := r.Err(); err != nil {
		return 0, fmt.Errorf("%w: base response: %v", ErrShort, err)
	}
	if pid[p-2] != 0 || pid[p-1] != 0 {
		return 0, &FieldError{Field: "ePID", Reason: "not NUL-terminated"}
	}
	for i := 0; i+2 < int(p)-2; i += 2 {
		if pid[i] == 0 && pid[i+1] == 0 {
			return 0, &FieldError{Field: "ePID", Reason: "contains a NUL character"}
		}
	}
	dst.EPID = wire.UTF16String(pid)
	return r.Offset(), nil
}

// BaseResponseSize is 44 + P.
func BaseResponseSize(pidSize int) int { return 44 + pidSize }

// V4ResponseSize is 60 + P.
func V4ResponseSize(pidSize int) int { return 60 + pidSize }

// V5ResponseSize is 20 + 16·(floor((92+P)/16)+1).
func V5ResponseSize(pidSize int) int { return 20 + 16*((92+pidSize)/16+1) }

// V6ResponseSize is 20 + 16·(floor((132+P)/16)+1).
func V6ResponseSize(pidSize int) int { return 20 + 16*((132+pidSize)/16+1) }

// PeekVersion returns the version in the first four bytes of a payload.
func PeekVersion(payload []byte) (Version, bool) {
	if len(payload) < 4 {
		return Version{}, false
	}
	return Version{Minor: binary.LittleEndian.Uint16(payload), Major: binary.LittleEndian.Uint16(payload[2:])}, true
}
