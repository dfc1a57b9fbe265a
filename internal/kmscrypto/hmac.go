package kmscrypto

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
)

// Constants of the V6 HMAC key derivation (kms-messages.md §8).
const (
	hmacC1 uint64 = 0x00000022816889BD // slot length in 100-ns units (≈ 4.1167 h)
	hmacC2 uint64 = 0x000000208CBAB5ED
	hmacC3 uint64 = 0x3156CD5AC628477A
)

// HMACKey derives the V6 HMAC key Kh from a FILETIME value T, the ClientTime
// of the response (kms-messages.md §8 steps 1–4):
// S = floor(T / C1) × C2 + C3 (mod 2^64), then S += t × C1 (mod 2^64), and
// Kh = SHA-256(S as 8 little-endian bytes)[16:32]. The tolerance step t is
// 0 for a host; a verifier may also try −1 and +1, as vlmcs does (§8,
// "Verification tolerance"). It does not allocate.
func HMACKey(clientTime uint64, t int) [16]byte {
	s := clientTime/hmacC1*hmacC2 + hmacC3
	s += uint64(int64(t)) * hmacC1 // wraps: t = −1 subtracts C1
	var seed [8]byte
	binary.LittleEndian.PutUint64(seed[:], s)
	h := sha256.Sum256(seed[:])
	return [16]byte(h[16:32])
}

// hmacFastMax is the longest message HMAC16 handles in a stack buffer. A V6
// HMAC message is 132 + P bytes with P ≤ 128 (kms-messages.md §8 step 5, §11).
const hmacFastMax = 448

// HMAC16 returns bytes 16..31 of HMAC-SHA256(key, msg) (RFC 2104 with a
// 16-byte key; kms-messages.md §8 step 6). For msg up to 448 bytes, which
// covers every V6 response, it does not allocate.
func HMAC16(key [16]byte, msg []byte) [16]byte {
	if len(msg) > hmacFastMax {
		return hmac16Long(key, msg)
	}
	// HMAC(K, m) = H((K ^ opad) || H((K ^ ipad) || m)), K zero-padded to
	// the 64-byte SHA-256 block.
	const block = 64
	var inner [block + hmacFastMax]byte
	var outer [block + sha256.Size]byte
	for i := range block {
		var k byte
		if i < len(key) {
			k = key[i]
		}
		inner[i] = k ^ 0x36
		outer[i] = k ^ 0x5c
	}
	n := block + copy(inner[block:], msg)
	ih := sha256.Sum256(inner[:n])
	copy(outer[block:], ih[:])
	oh := sha256.Sum256(outer[:])
	return [16]byte(oh[16:32])
}

// hmac16Long is HMAC16 through crypto/hmac, for messages too long for the
// stack buffer. It is a separate function so that key escapes only here.
func hmac16Long(key [16]byte, msg []byte) [16]byte {
	m := hmac.New(sha256.New, key[:])
	m.Write(msg)
	return [16]byte(m.Sum(nil)[16:32])
}

// SaltHash returns SHA-256 of the 16 bytes r: the Hash field of a V5/V6
// response, SHA-256(R) (kms-messages.md §7.1, §7.3 step 3).
func SaltHash(r *[16]byte) [32]byte {
	return sha256.Sum256(r[:])
}
