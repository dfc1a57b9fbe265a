package kms

import (
	"bytes"
	"crypto/sha256"
	"fmt"

	"kmsd/internal/kmscrypto"
)

// EncodeRequest appends the request message for base (kms-messages.md §4.1,
// §6). The message format follows base.Version's major: below 5 the V4
// layout, otherwise the encrypted layout with the V5 cipher for 5 and the
// V6 cipher above, whatever the version's validity (as vlmcs -K does).
func EncodeRequest(dst []byte, base *BaseRequest, iv [16]byte) []byte {
	if base.Version.Major < 5 {
		start := len(dst)
		dst = base.Encode(dst)
		mac := kmscrypto.V4MAC(dst[start:])
		return append(dst, mac[:]...)
	}
	dst = appendVersion(dst, base.Version)
	dst = append(dst, iv[:]...)
	start := len(dst)
	dst = base.Encode(dst)
	dst = append(dst, 4, 4, 4, 4)
	kmscrypto.ForMajor(base.Version.Major).CBCEncrypt(&iv, dst[start:])
	return dst
}

// Verified is a response that passed the client's checks.
type Verified struct {
	Outer    Version
	Base     BaseResponse
	HWID     [8]byte
	HasHWID  bool
	Size     int
	Warnings []string
}

// VerifyError names the check a response failed.
type VerifyError struct {
	Check  string
	Detail string
}

func (e *VerifyError) Error() string {
	if e.Detail == "" {
		return "kms: invalid response: " + e.Check
	}
	return "kms: invalid response: " + e.Check + ": " + e.Detail
}

func (e *VerifyError) Unwrap() error { return ErrInvalidResponse }

// decodeSent recovers the base request and DIV of a request this client
// built, whatever its version.
func decodeSent(sent []byte) (Request, error) {
	var r Request
	v, ok := PeekVersion(sent)
	if !ok {
		return r, fmt.Errorf("%w: request", ErrShort)
	}
	r.Outer = v
	if v.Major < 5 {
		return r, r.Base.Decode(sent)
	}
	if len(sent) < V6RequestSize {
		return r, fmt.Errorf("%w: request of %d bytes", ErrShort, len(sent))
	}
	c := kmscrypto.ForMajor(v.Major)
	copy(r.IV[:], sent[4:20])
	c.DecryptBlock(r.DIV[:], r.IV[:])
	var plain [240]byte
	copy(plain[:], sent[20:V6RequestSize])
	c.CBCDecrypt(&r.IV, plain[:])
	return r, r.Base.Decode(plain[:])
}

// VerifyResponse checks resp against the request payload sent, as vlmcs
// does (kms-messages.md §9, kms-client.md §6).
func VerifyResponse(sent, resp []byte) (*Verified, error) {
	req, err := decodeSent(sent)
	if err != nil {
		return nil, err
	}
	if req.Outer.Major < 5 {
		return verifyV4(&req, resp)
	}
	return verifyV56(&req, resp)
}

func verifyV4(req *Request, resp []byte) (*Verified, error) {
	out := &Verified{Size: len(resp)}
	n, err := decodeBaseResponse(&out.Base, resp)
	if err != nil {
		return nil, err
	}
	out.Outer = out.Base.Version
	if len(resp) < n+16 {
		return nil, &VerifyError{Check: "size", Detail: fmt.Sprintf("%d bytes leave no room for the MAC", len(resp))}
	}
	mac := kmscrypto.V4MAC(resp[:n])
	if !bytes.Equal(mac[:], resp[n:n+16]) {
		return nil, &VerifyError{Check: "MAC"}
	}
	if len(resp) != n+16 {
		out.Warnings = append(out.Warnings, fmt.Sprintf("response size %d, expected %d", len(resp), n+16))
	}
	if err := checkEcho(req, out); err != nil {
		return nil, err
	}
	return out, nil
}

func checkEcho(req *Request, out *Verified) error {
	switch {
	// request outer == response base == response outer == request base
	case out.Base.Version != req.Outer || out.Outer != req.Outer || req.Base.Version != req.Outer:
		return &VerifyError{Check: "protocol version", Detail: fmt.Sprintf("sent %s, got %s/%s", req.Outer, out.Outer, out.Base.Version)}
	case out.Base.CMID != req.Base.CMID:
		return &VerifyError{Check: "client machine ID"}
	case out.Base.ClientTime != req.Base.ClientTime:
		return &VerifyError{Check: "time stamp"}
	}
	return nil
}

func verifyV56(req *Request, resp []byte) (*Verified, error) {
	out := &Verified{Size: len(resp)}
	v, ok := PeekVersion(resp)
	if !ok || len(resp) < 20+16 || (len(resp)-20)%16 != 0 {
		return nil, &VerifyError{Check: "decryption", Detail: fmt.Sprintf("%d bytes are not whole blocks", len(resp))}
	}
	out.Outer = v
	var ivr [16]byte
	copy(ivr[:], resp[4:20])
	plain := append([]byte(nil), resp[20:]...)
	kmscrypto.ForMajor(v.Major).CBCDecrypt(&ivr, plain)
	plain, err := kmscrypto.UnpadPKCS7(plain)
	if err != nil {
		return nil, &VerifyError{Check: "decryption", Detail: err.Error()}
	}
	n, err := decodeBaseResponse(&out.Base, plain)
	if err != nil {
		return nil, err
	}
	if err := checkEcho(req, out); err != nil {
		return nil, err
	}
	v6 := req.Outer.Major > 5
	need := n + 48
	if v6 {
		need = n + 88
	}
	if len(plain) < need {
		return nil, &VerifyError{Check: "size", Detail: fmt.Sprintf("%d plaintext bytes, need %d", len(plain), need)}
	}
	var r [16]byte
	for i := range r {
		r[i] = plain[n+i] ^ req.DIV[i]
	}
	if h := sha256.Sum256(r[:]); !bytes.Equal(h[:], plain[n+16:n+48]) {
		return nil, &VerifyError{Check: "hash"}
	}
	size := V5ResponseSize(n - 44)
	if v6 {
		size = V6ResponseSize(n - 44)
		if err := verifyV6Tail(req, out, resp, plain, n); err != nil {
			return nil, err
		}
	} else if !bytes.Equal(resp[4:20], req.IV[:]) {
		return nil, &VerifyError{Check: "initialization vectors", Detail: "V5 response IV differs from the request IV"}
	}
	if len(resp) != size {
		out.Warnings = append(out.Warnings, fmt.Sprintf("response size %d, expected %d", len(resp), size))
	}
	return out, nil
}

func verifyV6Tail(req *Request, out *Verified, resp, plain []byte, n int) error {
	copy(out.HWID[:], plain[n+48:n+56])
	out.HasHWID = true
	if !bytes.Equal(plain[n+56:n+72], req.DIV[:]) {
		return &VerifyError{Check: "initialization vectors", Detail: "XoredIVs differ from the decrypted request IV"}
	}
	c := kmscrypto.V6()
	var x [16]byte
	c.DecryptBlock(x[:], resp[4:20])
	msg := make([]byte, 0, 16+n+72)
	msg = append(append(msg, x[:]...), plain[:n+72]...)
	ok := false
	for _, t := range [3]int{0, -1, 1} {
		mac := kmscrypto.HMAC16(kmscrypto.HMACKey(out.Base.ClientTime, t), msg)
		if bytes.Equal(mac[:], plain[n+72:n+88]) {
			ok = true
			break
		}
	}
	if !ok {
		return &VerifyError{Check: "HMAC"}
	}
	if x == req.DIV {
		out.Warnings = append(out.Warnings, "response IV equals the request IV: the host is an emulator")
	}
	return nil
}
