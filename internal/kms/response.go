package kms

import (
	"kmsd/internal/kmscrypto"
)

// Answer holds what the host decided for one request; EncodeResponse turns
// it into the protected response message.
type Answer struct {
	EPID               []byte // UTF-16LE with its NUL
	HWID               [8]byte
	Count              uint32
	ActivationInterval uint32
	RenewalInterval    uint32
}

// EncodeResponse appends the response to req (kms-messages.md §4.2, §7).
// rnd supplies the random salt R and, for V6, X (the decrypted response
// IV); it must hold 32 random bytes (only the first 16 are used for V5,
// none for V4).
func EncodeResponse(dst []byte, req *Request, a *Answer, rnd *[32]byte) []byte {
	switch req.Outer.Major {
	case 4:
		start := len(dst)
		dst = appendBaseResponse(dst, req.Base.Version, a.EPID, &req.Base, a.Count, a.ActivationInterval, a.RenewalInterval)
		mac := kmscrypto.V4MAC(dst[start:])
		return append(dst, mac[:]...)
	case 5:
		return encodeV5(dst, req, a, rnd)
	default:
		return encodeV6(dst, req, a, rnd)
	}
}

func appendSalt(dst []byte, req *Request, r []byte) []byte {
	var x [16]byte
	for i := range x {
		x[i] = r[i] ^ req.DIV[i]
	}
	dst = append(dst, x[:]...)
	h := kmscrypto.SaltHash((*[16]byte)(r))
	return append(dst, h[:]...)
}

func encodeV5(dst []byte, req *Request, a *Answer, rnd *[32]byte) []byte {
	dst = appendVersion(dst, req.Outer)
	dst = append(dst, req.IV[:]...)
	start := len(dst)
	dst = appendBaseResponse(dst, req.Base.Version, a.EPID, &req.Base, a.Count, a.ActivationInterval, a.RenewalInterval)
	dst = appendSalt(dst, req, rnd[:16])
	dst = padFrom(dst, start)
	iv := req.IV
	kmscrypto.V5().CBCEncrypt(&iv, dst[start:])
	return dst
}

func encodeV6(dst []byte, req *Request, a *Answer, rnd *[32]byte) []byte {
	c := kmscrypto.V6()
	x := (*[16]byte)(rnd[16:32])
	var ivr [16]byte
	c.EncryptBlock(ivr[:], x[:])
	if ivr == req.IV { // never reuse the request IV (kms-messages.md §7.2)
		x[0] ^= 1
		c.EncryptBlock(ivr[:], x[:])
	}
	dst = appendVersion(dst, req.Outer)
	dst = append(dst, ivr[:]...)
	start := len(dst)
	dst = append(dst, x[:]...) // HMAC prefix, overwritten below
	body := len(dst)
	dst = appendBaseResponse(dst, req.Base.Version, a.EPID, &req.Base, a.Count, a.ActivationInterval, a.RenewalInterval)
	dst = appendSalt(dst, req, rnd[:16])
	dst = append(dst, a.HWID[:]...)
	dst = append(dst, req.DIV[:]...)
	mac := kmscrypto.HMAC16(kmscrypto.HMACKey(req.Base.ClientTime, 0), dst[start:])
	dst = append(dst, mac[:]...)
	// Drop the X prefix: shift the plaintext down by 16 bytes.
	n := copy(dst[start:], dst[body:])
	dst = dst[:start+n]
	dst = padFrom(dst, start)
	kmscrypto.V6().CBCEncrypt(&ivr, dst[start:])
	return dst
}

// padFrom appends PKCS#7 padding to the region of dst that begins at start.
func padFrom(dst []byte, start int) []byte {
	n := 16 - (len(dst)-start)%16
	for i := 0; i < n; i++ {
		dst = append(dst, byte(n))
	}
	return dst
}
