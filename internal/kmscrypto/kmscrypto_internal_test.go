package kmscrypto

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"testing"
)

// roundKey returns round key r of k as 16 bytes.
func roundKey(k *rijndael, r int) string {
	var b [16]byte
	for j := range 4 {
		binary.BigEndian.PutUint32(b[4*j:], k.enc[4*r+j])
	}
	return hex.EncodeToString(b[:])
}

// TestRoundKeysV6 checks the round keys of kms-messages.md §5.2 and
// kms-examples.md §1, before and after the V6 change.
func TestRoundKeysV6(t *testing.T) {
	std := newCipher(keyV6[:], false)
	tests := []struct {
		round         int
		std, modified string
	}{
		{4, "7630e12e111e2b4d3f6a5901edca6094", "0530e12e111e2b4d3f6a5901edca6094"},
		{6, "6adec9456920217355b4904484ea41e7", "63dec9456920217355b4904484ea41e7"},
		{8, "0bc82943cfb5552a5e7cb9074b5f14cd", "efc82943cfb5552a5e7cb9074b5f14cd"},
	}
	for _, tt := range tests {
		if got := roundKey(&std.r, tt.round); got != tt.std {
			t.Errorf("standard RK[%d] = %s, want %s", tt.round, got, tt.std)
		}
		if got := roundKey(&v6.r, tt.round); got != tt.modified {
			t.Errorf("V6 RK[%d] = %s, want %s", tt.round, got, tt.modified)
		}
	}
	// All other round keys are the standard ones (§5.2 step 2).
	for r := 0; r <= 10; r++ {
		if r == 4 || r == 6 || r == 8 {
			continue
		}
		if a, b := roundKey(&std.r, r), roundKey(&v6.r, r); a != b {
			t.Errorf("V6 RK[%d] = %s, want standard %s", r, b, a)
		}
	}
}

// TestRoundKeysV4 checks the Nk = 5 key schedule against kms-messages.md §5.3.
func TestRoundKeysV4(t *testing.T) {
	want := []string{
		"053d8307f9e5f088eb5ea6686cf037c7", "e4efd2d6db88756e226d85e6c933238e",
		"a5c31449412cc69fa83caeed8a512b0b", "43620885e6a11ccca78dda53f16b43b1",
		"7b3a68ba3858603fdef97cf37974a6a0", "6b4fa3071075cbbd282dab82f6d4d771",
		"8fa071d19bec9d748b9956c9a3b4fd4b", "55602a3adac05beb01d574238a4c22ea",
		"29f8dfa17c98f59ba658ae702b312507", "a17d07ed8885d84cf41d2dd7524583a7",
		"c5dd790764a07eeaec25a6a618388b71", "4a7d08d621ed8fd1454df13ba968579d",
	}
	if v4.r.nr != 11 {
		t.Fatalf("V4 rounds = %d, want 11", v4.r.nr)
	}
	for r, w := range want {
		if got := roundKey(&v4.r, r); got != w {
			t.Errorf("V4 RK[%d] = %s, want %s", r, got, w)
		}
	}
}

// TestFIPS197 checks the AES-128 example of FIPS-197 appendix C.1 and a few
// S-box entries of FIPS-197 figure 7.
func TestFIPS197(t *testing.T) {
	key, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f")
	pt, _ := hex.DecodeString("00112233445566778899aabbccddeeff")
	c := newCipher(key, false)
	var ct [16]byte
	c.EncryptBlock(ct[:], pt)
	if got := hex.EncodeToString(ct[:]); got != "69c4e0d86a7b0430d8cdb78070b4c55a" {
		t.Errorf("FIPS-197 C.1 ciphertext = %s", got)
	}
	c.DecryptBlock(ct[:], ct[:])
	if got := hex.EncodeToString(ct[:]); got != hex.EncodeToString(pt) {
		t.Errorf("FIPS-197 C.1 decryption = %s", got)
	}
	for in, out := range map[byte]byte{0x00: 0x63, 0x01: 0x7c, 0x53: 0xed, 0xff: 0x16} {
		if sbox[in] != out || invSbox[out] != in {
			t.Errorf("sbox[%#02x] = %#02x, want %#02x", in, sbox[in], out)
		}
	}
}

// TestAESNIMatchesTables checks the AES-instruction rounds against the
// table-driven ones on random keys (16 and 20 bytes, with and without the
// V6 change), blocks, CBC buffers and V4 MACs. `make test` also runs every
// known-answer test with -tags purego, on the tables alone.
func TestAESNIMatchesTables(t *testing.T) {
	if !useAESNI {
		t.Skip("no AES instructions in this build or on this processor")
	}
	defer func() { useAESNI = true }()
	r := rand.New(rand.NewPCG(7, 7))
	fill := func(b []byte) {
		for i := range b {
			b[i] = byte(r.Uint32())
		}
	}
	both := func(f func() []byte) (tables, aesni []byte) {
		useAESNI = false
		tables = f()
		useAESNI = true
		return tables, f()
	}
	for i := range 400 {
		key := make([]byte, 16+4*(i%2))
		fill(key)
		c := newCipher(key, i%4 < 2 && len(key) == 16)
		var block [16]byte
		fill(block[:])
		enc := func() []byte { var o [16]byte; c.EncryptBlock(o[:], block[:]); return o[:] }
		dec := func() []byte { var o [16]byte; c.DecryptBlock(o[:], block[:]); return o[:] }
		for name, f := range map[string]func() []byte{"encrypt": enc, "decrypt": dec} {
			if a, b := both(f); !bytes.Equal(a, b) {
				t.Fatalf("key %x %s %x: tables %x, AES instructions %x", key, name, block, a, b)
			}
		}
		buf := make([]byte, 16*(1+r.IntN(20)))
		fill(buf)
		var iv [16]byte
		fill(iv[:])
		cbc := func(decrypt bool) func() []byte {
			return func() []byte {
				b := bytes.Clone(buf)
				if decrypt {
					c.CBCDecrypt(&iv, b)
				} else {
					c.CBCEncrypt(&iv, b)
				}
				return b
			}
		}
		if a, b := both(cbc(false)); !bytes.Equal(a, b) {
			t.Fatalf("key %x CBC encrypt of %d bytes differs", key, len(buf))
		}
		if a, b := both(cbc(true)); !bytes.Equal(a, b) {
			t.Fatalf("key %x CBC decrypt of %d bytes differs", key, len(buf))
		}
		msg := buf[:r.IntN(len(buf)+1)]
		if a, b := both(func() []byte { m := V4MAC(msg); return m[:] }); !bytes.Equal(a, b) {
			t.Fatalf("V4MAC of %d bytes: tables %x, AES instructions %x", len(msg), a, b)
		}
	}
	// An empty CBC buffer is left alone on both paths.
	var iv [16]byte
	v6.CBCEncrypt(&iv, nil)
	v6.CBCDecrypt(&iv, []byte{})
}
