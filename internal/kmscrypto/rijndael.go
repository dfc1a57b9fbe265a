package kmscrypto

import (
	"encoding/binary"
	"math/bits"
)

// This file is a table-driven Rijndael with a 128-bit block (FIPS-197) for
// Nk = 4 (AES-128, 10 rounds) and Nk = 5 (160-bit key, 11 rounds), as the
// three KMS ciphers need (kms-messages.md §5).
//
// The state is held as four big-endian 32-bit words, one per column: word c
// holds state bytes 4c..4c+3, row 0 in the top byte. Round-key word i is the
// big-endian reading of expanded-key bytes 4i..4i+3, so byte j of a round key
// meets state byte j, as §5.2 step 1 requires.
//
// The tables leak memory-access timing. That does not matter here: every
// KMS key is a published constant (§4.3, §5.1, §5.2), so there is no secret
// to recover.

// maxRounds is the largest Nr used: 11 for the 160-bit V4 key (§5.3).
const maxRounds = 11

// Substitution boxes and round tables, generated at package initialisation
// (Go orders these initialisers by dependency).
var (
	sbox, invSbox      = genSboxes()
	te0, te1, te2, te3 = genRoundTables(&sbox, [4]byte{2, 1, 1, 3})
	td0, td1, td2, td3 = genRoundTables(&invSbox, [4]byte{0xe, 0x9, 0xd, 0xb})
)

// gmul multiplies two elements of GF(2^8) modulo x^8+x^4+x^3+x+1 (FIPS-197 §4.2).
func gmul(a, b byte) byte {
	var p byte
	for b != 0 {
		if b&1 != 0 {
			p ^= a
		}
		a = xtime(a)
		b >>= 1
	}
	return p
}

// xtime multiplies by x in GF(2^8) (FIPS-197 §4.2.1).
func xtime(a byte) byte {
	if a&0x80 != 0 {
		return a<<1 ^ 0x1b
	}
	return a << 1
}

// genSboxes builds the S-box and its inverse (FIPS-197 §5.1.1): the
// multiplicative inverse in GF(2^8), found through powers of the generator
// 3, followed by the affine transformation.
func genSboxes() (s, inv [256]byte) {
	var exp, log [256]byte
	x := byte(1)
	for i := range 255 {
		exp[i] = x
		log[x] = byte(i)
		x ^= xtime(x) // x * 3
	}
	for i := range 256 {
		var b byte // inverse of i; 0 maps to 0
		if i != 0 {
			b = exp[(255-int(log[i]))%255]
		}
		v := b ^ bits.RotateLeft8(b, 1) ^ bits.RotateLeft8(b, 2) ^
			bits.RotateLeft8(b, 3) ^ bits.RotateLeft8(b, 4) ^ 0x63
		s[i] = v
		inv[v] = byte(i)
	}
	return s, inv
}

// genRoundTables builds the four lookup tables that combine a substitution
// with one column of (Inv)MixColumns: t0[x] has the bytes m[0..3]·box[x],
// and tN is t0 rotated right by 8N bits.
func genRoundTables(box *[256]byte, m [4]byte) (t0, t1, t2, t3 [256]uint32) {
	for i, s := range box {
		w := uint32(gmul(m[0], s))<<24 | uint32(gmul(m[1], s))<<16 |
			uint32(gmul(m[2], s))<<8 | uint32(gmul(m[3], s))
		t0[i] = w
		t1[i] = bits.RotateLeft32(w, -8)
		t2[i] = bits.RotateLeft32(w, -16)
		t3[i] = bits.RotateLeft32(w, -24)
	}
	return
}

// subWord applies the S-box to each byte of w (FIPS-197 §5.2).
func subWord(w uint32) uint32 {
	return uint32(sbox[w>>24])<<24 | uint32(sbox[w>>16&0xff])<<16 |
		uint32(sbox[w>>8&0xff])<<8 | uint32(sbox[w&0xff])
}

// rijndael holds expanded encryption and decryption round keys.
type rijndael struct {
	nr  int                         // number of rounds
	enc [4 * (maxRounds + 1)]uint32 // round keys RK[0..nr], 4 words each
	dec [4 * (maxRounds + 1)]uint32 // equivalent-inverse-cipher keys
	// The same keys as bytes (each word big-endian), for the AES
	// instructions, which take the state and keys in FIPS-197 byte order
	// and whose decryption rounds are those of the equivalent inverse
	// cipher.
	encB, decB [16 * (maxRounds + 1)]byte
}

// expandKey runs the FIPS-197 §5.2 key expansion for a 16- or 20-byte key
// (Nk = 4 or 5, Nr = Nk + 6; no extra SubWord, which exists only for Nk > 6).
// The decryption keys are not derived yet; see deriveDecKeys.
func (k *rijndael) expandKey(key []byte) {
	nk := len(key) / 4
	if len(key) != 16 && len(key) != 20 {
		panic("kmscrypto: unsupported Rijndael key size")
	}
	k.nr = nk + 6
	w := k.enc[:4*(k.nr+1)]
	for i := range nk {
		w[i] = binary.BigEndian.Uint32(key[4*i:])
	}
	rcon := byte(1)
	for i := nk; i < len(w); i++ {
		t := w[i-1]
		if i%nk == 0 {
			t = subWord(bits.RotateLeft32(t, 8)) ^ uint32(rcon)<<24
			rcon = xtime(rcon)
		}
		w[i] = w[i-nk] ^ t
	}
}

// deriveDecKeys builds the round keys of the equivalent inverse cipher
// (FIPS-197 §5.3.5) from the final encryption round keys: reversed order,
// InvMixColumns applied to all but the first and last. Any V6 change to the
// encryption keys must be made before this is called (kms-messages.md §5.2
// step 3).
func (k *rijndael) deriveDecKeys() {
	n := 4 * k.nr
	for i := 0; i <= n; i += 4 {
		for j := range 4 {
			w := k.enc[n-i+j]
			if i > 0 && i < n {
				// td tables include InvSubBytes; undo it with sbox.
				w = td0[sbox[w>>24]] ^ td1[sbox[w>>16&0xff]] ^
					td2[sbox[w>>8&0xff]] ^ td3[sbox[w&0xff]]
			}
			k.dec[i+j] = w
		}
	}
	for i := range 4 * (k.nr + 1) {
		binary.BigEndian.PutUint32(k.encB[4*i:], k.enc[i])
		binary.BigEndian.PutUint32(k.decB[4*i:], k.dec[i])
	}
}

// encrypt runs the cipher (FIPS-197 §5.1) on a state given as column words.
func (k *rijndael) encrypt(s0, s1, s2, s3 uint32) (uint32, uint32, uint32, uint32) {
	rk := k.enc[:4*(k.nr+1)]
	s0 ^= rk[0]
	s1 ^= rk[1]
	s2 ^= rk[2]
	s3 ^= rk[3]
	rk = rk[4:]
	for range k.nr - 1 {
		t0 := te0[s0>>24] ^ te1[s1>>16&0xff] ^ te2[s2>>8&0xff] ^ te3[s3&0xff] ^ rk[0]
		t1 := te0[s1>>24] ^ te1[s2>>16&0xff] ^ te2[s3>>8&0xff] ^ te3[s0&0xff] ^ rk[1]
		t2 := te0[s2>>24] ^ te1[s3>>16&0xff] ^ te2[s0>>8&0xff] ^ te3[s1&0xff] ^ rk[2]
		t3 := te0[s3>>24] ^ te1[s0>>16&0xff] ^ te2[s1>>8&0xff] ^ te3[s2&0xff] ^ rk[3]
		s0, s1, s2, s3 = t0, t1, t2, t3
		rk = rk[4:]
	}
	// Final round: SubBytes, ShiftRows, AddRoundKey (no MixColumns).
	t0 := finalWord(&sbox, s0, s1, s2, s3) ^ rk[0]
	t1 := finalWord(&sbox, s1, s2, s3, s0) ^ rk[1]
	t2 := finalWord(&sbox, s2, s3, s0, s1) ^ rk[2]
	t3 := finalWord(&sbox, s3, s0, s1, s2) ^ rk[3]
	return t0, t1, t2, t3
}

// decrypt runs the equivalent inverse cipher (FIPS-197 §5.3.5), which gives
// the same result as the straightforward inverse cipher with the same round
// keys (kms-messages.md §5.2 step 3).
func (k *rijndael) decrypt(s0, s1, s2, s3 uint32) (uint32, uint32, uint32, uint32) {
	rk := k.dec[:4*(k.nr+1)]
	s0 ^= rk[0]
	s1 ^= rk[1]
	s2 ^= rk[2]
	s3 ^= rk[3]
	rk = rk[4:]
	for range k.nr - 1 {
		t0 := td0[s0>>24] ^ td1[s3>>16&0xff] ^ td2[s2>>8&0xff] ^ td3[s1&0xff] ^ rk[0]
		t1 := td0[s1>>24] ^ td1[s0>>16&0xff] ^ td2[s3>>8&0xff] ^ td3[s2&0xff] ^ rk[1]
		t2 := td0[s2>>24] ^ td1[s1>>16&0xff] ^ td2[s0>>8&0xff] ^ td3[s3&0xff] ^ rk[2]
		t3 := td0[s3>>24] ^ td1[s2>>16&0xff] ^ td2[s1>>8&0xff] ^ td3[s0&0xff] ^ rk[3]
		s0, s1, s2, s3 = t0, t1, t2, t3
		rk = rk[4:]
	}
	// Final round: InvShiftRows, InvSubBytes, AddRoundKey.
	t0 := finalWord(&invSbox, s0, s3, s2, s1) ^ rk[0]
	t1 := finalWord(&invSbox, s1, s0, s3, s2) ^ rk[1]
	t2 := finalWord(&invSbox, s2, s1, s0, s3) ^ rk[2]
	t3 := finalWord(&invSbox, s3, s2, s1, s0) ^ rk[3]
	return t0, t1, t2, t3
}

// finalWord substitutes row r of word a_r through box and packs the four
// bytes into one column word.
func finalWord(box *[256]byte, a0, a1, a2, a3 uint32) uint32 {
	return uint32(box[a0>>24])<<24 | uint32(box[a1>>16&0xff])<<16 |
		uint32(box[a2>>8&0xff])<<8 | uint32(box[a3&0xff])
}

// load reads one block as four column words.
func load(b []byte) (uint32, uint32, uint32, uint32) {
	_ = b[15]
	return binary.BigEndian.Uint32(b[0:]), binary.BigEndian.Uint32(b[4:]),
		binary.BigEndian.Uint32(b[8:]), binary.BigEndian.Uint32(b[12:])
}

// store writes four column words as one block.
func store(b []byte, s0, s1, s2, s3 uint32) {
	_ = b[15]
	binary.BigEndian.PutUint32(b[0:], s0)
	binary.BigEndian.PutUint32(b[4:], s1)
	binary.BigEndian.PutUint32(b[8:], s2)
	binary.BigEndian.PutUint32(b[12:], s3)
}
