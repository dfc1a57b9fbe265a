package kms

import (
	"fmt"

	"kmsd/internal/kmscrypto"
)

// Request is a decoded activation request of any version: the outer
// version, and for V5/V6 the IV and the decrypted request IV (DIV).
type Request struct {
	Outer Version
	Base  BaseRequest
	IV    [16]byte // V5/V6 only
	DIV   [16]byte // D_K(IV), V5/V6 only
	// PaddingOK is false when the V5/V6 padding was not 04 04 04 04, and
	// MACOK false when a V4 MAC did not verify; both are logged, never
	// refused (kms-messages.md §10).
	PaddingOK bool
	MACOK     bool
}

// HResultInvalidData is the answer to unsupported versions, short payloads
// and N policies above 1000 (kms-server.md §10).
const HResultInvalidData = 0x8007000D

// Decode parses and, for V5/V6, decrypts a request payload. Unsupported
// versions and short payloads return a *RefusalError with 0x8007000D
// (kms-messages.md §10); payload bytes past the message are ignored.
func (dst *Request) Decode(payload []byte) error {
	v, ok := PeekVersion(payload)
	if !ok {
		return &RefusalError{HResult: HResultInvalidData, Reason: fmt.Sprintf("payload of %d bytes", len(payload))}
	}
	dst.Outer = v
	if !v.Supported() {
		return &RefusalError{HResult: HResultInvalidData, Reason: fmt.Sprintf("protocol %s unsupported", v)}
	}
	if v.Major == 4 {
		if len(payload) < V4RequestSize {
			return &RefusalError{HResult: HResultInvalidData, Reason: fmt.Sprintf("V4 request of %d bytes", len(payload))}
		}
		if err := dst.Base.Decode(payload); err != nil {
			return err
		}
		mac := kmscrypto.V4MAC(payload[:BaseRequestSize])
		dst.MACOK = string(mac[:]) == string(payload[BaseRequestSize:V4RequestSize])
		dst.PaddingOK = true
		return nil
	}
	if len(payload) < V6RequestSize {
		return &RefusalError{HResult: HResultInvalidData, Reason: fmt.Sprintf("V%d request of %d bytes", v.Major, len(payload))}
	}
	c := kmscrypto.ForMajor(v.Major)
	copy(dst.IV[:], payload[4:20])
	c.DecryptBlock(dst.DIV[:], dst.IV[:])
	var plain [240]byte
	copy(plain[:], payload[20:V6RequestSize])
	c.CBCDecrypt(&dst.IV, plain[:])
	if err := dst.Base.Decode(plain[:]); err != nil {
		return err
	}
	dst.PaddingOK = plain[236] == 4 && plain[237] == 4 && plain[238] == 4 && plain[239] == 4
	dst.MACOK = true
	return nil
}

// RefusalError is a KMS refusal: a normal response whose return value is
// HResult (kms-rpc.md §9.3).
type RefusalError struct {
	HResult uint32
	Reason  string
}

func (e *RefusalError) Error() string {
	return fmt.Sprintf("kms: refused 0x%08X: %s", e.HResult, e.Reason)
}
