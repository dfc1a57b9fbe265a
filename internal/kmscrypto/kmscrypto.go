// Package kmscrypto implements the cryptography of the KMS activation
// protocol, versions 4, 5 and 6 (shared/spec/kms-messages.md §4–§8): the V4
// CBC-MAC over 160-bit-key Rijndael, the V5 (standard) and V6 (modified)
// AES-128 ciphers with CBC mode and PKCS#7 padding, and the SHA-256 salt hash
// and HMAC key derivation of V5/V6 responses.
//
// Everything here is deterministic and free of I/O; callers supply random
// values. The block ciphers are implemented from FIPS-197 with lookup tables
// and never allocate.
package kmscrypto

import (
	"errors"
)

// BlockSize is the block size in bytes of all three KMS ciphers
// (kms-messages.md §5).
const BlockSize = 16

// ErrPadding is returned by UnpadPKCS7 for malformed PKCS#7 padding
// (kms-messages.md §5.4, §9 step 1).
var ErrPadding = errors.New("kmscrypto: bad padding")

// Keys of kms-messages.md §4.3 (V4), §5.1 (V5) and §5.2 (V6).
var (
	keyV4 = [20]byte{
		0x05, 0x3D, 0x83, 0x07, 0xF9, 0xE5, 0xF0, 0x88, 0xEB, 0x5E,
		0xA6, 0x68, 0x6C, 0xF0, 0x37, 0xC7, 0xE4, 0xEF, 0xD2, 0xD6,
	}
	keyV5 = [16]byte{
		0xCD, 0x7E, 0x79, 0x6F, 0x2A, 0xB2, 0x5D, 0xCB,
		0x55, 0xFF, 0xC8, 0xEF, 0x83, 0x64, 0xC4, 0x70,
	}
	keyV6 = [16]byte{
		0xA9, 0x4A, 0x41, 0x95, 0xE2, 0x01, 0x43, 0x2D,
		0x9B, 0xCB, 0x46, 0x04, 0x05, 0xD8, 0x4A, 0x21,
	}
)

// v6Tweaks lists the V6 round-key changes of kms-messages.md §5.2 step 2:
// byte 0 of round key RK[round] is XORed with the value.
var v6Tweaks = [...]struct {
	round int
	xor   byte
}{{4, 0x73}, {6, 0x09}, {8, 0xE4}}

// The three ciphers, built once at package initialisation.
var (
	v4 = newCipher(keyV4[:], false)
	v5 = newCipher(keyV5[:], false)
	v6 = newCipher(keyV6[:], true)
)

// Cipher is one of the KMS block ciphers with precomputed encryption and
// decryption round keys (kms-messages.md §5). It is immutable and therefore
// safe for concurrent use. Obtain one from V5, V6 or ForMajor.
type Cipher struct {
	r rijndael
}

// newCipher expands key and, for V6, applies the round-key changes after the
// whole expansion and before the decryption keys are derived (§5.2).
func newCipher(key []byte, tweakV6 bool) *Cipher {
	c := new(Cipher)
	c.r.expandKey(key)
	if tweakV6 {
		for _, t := range v6Tweaks {
			c.r.enc[4*t.round] ^= uint32(t.xor) << 24
		}
	}
	c.r.deriveDecKeys()
	return c
}

// V5 returns the V5 cipher: standard AES-128 with the key of
// kms-messages.md §5.1.
func V5() *Cipher { return v5 }

// V6 returns the V6 cipher: AES-128 with the key of kms-messages.md §5.2 and
// RK[4][0] ^= 0x73, RK[6][0] ^= 0x09, RK[8][0] ^= 0xE4 after expansion.
func V6() *Cipher { return v6 }

// ForMajor returns the cipher for a V5/V6 message with the given outer major
// version: V6 for major > 5, else V5 (kms-messages.md §6).
func ForMajor(major uint16) *Cipher {
	if major > 5 {
		return v6
	}
	return v5
}

// EncryptBlock encrypts the first block of src into dst (E_K of
// kms-protocol.md §2). dst and src may overlap exactly. It panics if either
// is shorter than BlockSize.
func (c *Cipher) EncryptBlock(dst, src []byte) {
	checkBlock(dst, src)
	var zero [BlockSize]byte // one block in CBC with a zero IV
	copy(dst[:BlockSize], src)
	c.CBCEncrypt(&zero, dst[:BlockSize])
}

// DecryptBlock decrypts the first block of src into dst (D_K of
// kms-protocol.md §2), for example DIV = D_K(request IV) of
// kms-messages.md §6. dst and src may overlap exactly. It panics if either is
// shorter than BlockSize.
func (c *Cipher) DecryptBlock(dst, src []byte) {
	checkBlock(dst, src)
	var zero [BlockSize]byte // one block in CBC with a zero IV
	copy(dst[:BlockSize], src)
	c.CBCDecrypt(&zero, dst[:BlockSize])
}

// checkBlock panics unless dst and src each hold a whole block.
func checkBlock(dst, src []byte) {
	if len(src) < BlockSize || len(dst) < BlockSize {
		panic("kmscrypto: input not full block")
	}
}

// checkBlocks panics unless buf is a whole number of blocks.
func checkBlocks(buf []byte) {
	if len(buf)%BlockSize != 0 {
		panic("kmscrypto: input not a whole number of blocks")
	}
}

// CBCEncrypt encrypts buf in place in CBC mode with initialisation vector iv
// (kms-messages.md §6 step 3, §7.3 step 7). iv is not modified. It panics if
// len(buf) is not a multiple of BlockSize; the caller pads first (PadPKCS7).
func (c *Cipher) CBCEncrypt(iv *[16]byte, buf []byte) {
	checkBlocks(buf)
	if useAESNI {
		if len(buf) > 0 {
			cbcEncryptAESNI(c.r.nr, &c.r.encB[0], &iv[0], &buf[0], len(buf)/BlockSize)
		}
		return
	}
	c0, c1, c2, c3 := load(iv[:])
	for len(buf) > 0 {
		s0, s1, s2, s3 := load(buf)
		c0, c1, c2, c3 = c.r.encrypt(s0^c0, s1^c1, s2^c2, s3^c3)
		store(buf, c0, c1, c2, c3)
		buf = buf[BlockSize:]
	}
}

// CBCDecrypt decrypts buf in place in CBC mode with initialisation vector iv
// (kms-messages.md §6 host step 1, §9 step 1). iv is not modified. It panics
// if len(buf) is not a multiple of BlockSize. Padding is left in place; see
// UnpadPKCS7.
func (c *Cipher) CBCDecrypt(iv *[16]byte, buf []byte) {
	checkBlocks(buf)
	if useAESNI {
		if len(buf) > 0 {
			cbcDecryptAESNI(c.r.nr, &c.r.decB[0], &iv[0], &buf[0], len(buf)/BlockSize)
		}
		return
	}
	p0, p1, p2, p3 := load(iv[:])
	for len(buf) > 0 {
		c0, c1, c2, c3 := load(buf)
		s0, s1, s2, s3 := c.r.decrypt(c0, c1, c2, c3)
		store(buf, s0^p0, s1^p1, s2^p2, s3^p3)
		p0, p1, p2, p3 = c0, c1, c2, c3
		buf = buf[BlockSize:]
	}
}

// V4MAC returns the V4 MAC of msg (kms-messages.md §4.3): a CBC-MAC with a
// zero IV over msg padded by ISO/IEC 9797-1 method 2 (0x80, then zeros to a
// whole block; always at least one byte), using Rijndael with the 160-bit V4
// key and 11 rounds (§5.3). It does not allocate.
func V4MAC(msg []byte) [16]byte {
	// Each block is CBC-encrypted in a copy (msg is not modified) with the
	// MAC so far as its IV.
	var mac, block [BlockSize]byte
	for len(msg) >= BlockSize {
		copy(block[:], msg)
		v4.CBCEncrypt(&mac, block[:])
		mac = block
		msg = msg[BlockSize:]
	}
	block = [BlockSize]byte{}
	block[copy(block[:], msg)] = 0x80
	v4.CBCEncrypt(&mac, block[:])
	return block
}

// PadPKCS7 appends PKCS#7 padding to b and returns the extended slice: n
// bytes of value n, n = 16 − len(b) mod 16, so a whole block of 0x10 when
// len(b) is already a multiple of 16 (kms-messages.md §5.4).
func PadPKCS7(b []byte) []byte {
	n := BlockSize - len(b)%BlockSize
	for range n {
		b = append(b, byte(n))
	}
	return b
}

// UnpadPKCS7 checks the PKCS#7 padding of b and returns b without it
// (a subslice, not a copy). It returns ErrPadding if len(b) is not a positive
// multiple of 16, the last byte is 0 or greater than 16, or the pad bytes are
// not all equal to it (kms-messages.md §5.4, §9 step 1).
func UnpadPKCS7(b []byte) ([]byte, error) {
	if len(b) == 0 || len(b)%BlockSize != 0 {
		return nil, ErrPadding
	}
	n := int(b[len(b)-1])
	if n == 0 || n > BlockSize {
		return nil, ErrPadding
	}
	for _, v := range b[len(b)-n:] {
		if int(v) != n {
			return nil, ErrPadding
		}
	}
	return b[:len(b)-n], nil
}
