package kmscrypto_test

import (
	"bytes"
	"crypto/aes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"kmsd/internal/kmscrypto"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

const (
	zero16 = "00000000000000000000000000000000"
	seq16  = "000102030405060708090a0b0c0d0e0f"
	fips16 = "00112233445566778899aabbccddeeff"
)

// TestBlockKAT checks the block-cipher known answers of kms-messages.md
// §5.1–§5.3 and kms-examples.md §1.
func TestBlockKAT(t *testing.T) {
	ciphers := map[string]*kmscrypto.Cipher{
		"V4": kmscrypto.V4Cipher(), "V5": kmscrypto.V5(), "V6": kmscrypto.V6(),
	}
	tests := []struct {
		cipher  string
		decrypt bool
		in, out string
	}{
		{"V4", false, zero16, "933030f10e2e7782b80915d5778a4957"},
		{"V4", false, seq16, "28916e4a0ee525b42cf393cae0f4dc9a"},
		{"V4", false, fips16, "175288485474df1d192d3f4c01e1677b"},
		{"V5", false, zero16, "ec7c7e75b1923978eac4b2d2260235d5"},
		{"V5", false, seq16, "8d77cb43633c62cbe1d15d570c23dc75"},
		{"V5", false, fips16, "3f06070040b62a7f49b4e1aa9f589b8c"},
		{"V5", true, zero16, "9f1680f29feed1274e875c9d86d107af"},
		{"V6", false, zero16, "8ca59de0c483c04aa7026a22d6dd208e"},
		{"V6", false, seq16, "ca89ca11b2c4e77a94e806af17136b38"},
		{"V6", false, fips16, "13eaa07470593be35700eb21ff77ad83"},
		{"V6", true, zero16, "8a1a5b385caaff8dd0ce3913d2cbc26f"},
	}
	for _, tt := range tests {
		c := ciphers[tt.cipher]
		in, want := unhex(t, tt.in), unhex(t, tt.out)
		enc, dec := c.EncryptBlock, c.DecryptBlock
		if tt.decrypt {
			enc, dec = dec, enc
		}
		var got [16]byte
		enc(got[:], in)
		if !bytes.Equal(got[:], want) {
			t.Errorf("%s decrypt=%v(%s) = %x, want %s", tt.cipher, tt.decrypt, tt.in, got, tt.out)
		}
		dec(got[:], got[:]) // in place, exact overlap
		if !bytes.Equal(got[:], in) {
			t.Errorf("%s decrypt=%v: inverse of %s gave %x", tt.cipher, tt.decrypt, tt.out, got)
		}
	}
}

// TestV4MACKAT checks the MAC known answers of kms-messages.md §4.3.
func TestV4MACKAT(t *testing.T) {
	tests := []struct{ msg, mac string }{
		{"", "d144963029e2bd12f9970c9f52b27f09"},
		{zero16, "2a090d7c1155251ab86445447d060335"},
		{"000102030405060708090a0b0c0d0e", "d9ced343d1fa93d3a37414a0be533037"},
	}
	for _, tt := range tests {
		if got := kmscrypto.V4MAC(unhex(t, tt.msg)); hex.EncodeToString(got[:]) != tt.mac {
			t.Errorf("V4MAC(%q) = %x, want %s", tt.msg, got, tt.mac)
		}
	}
}

// TestV4MACPadding checks ISO/IEC 9797-1 method 2 padding (§4.3 step 1)
// against an explicit CBC-MAC over the V4 cipher, for every tail length.
func TestV4MACPadding(t *testing.T) {
	msg := make([]byte, 300)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	for l := 0; l <= len(msg); l++ {
		padded := append(append([]byte{}, msg[:l]...), 0x80)
		for len(padded)%16 != 0 {
			padded = append(padded, 0)
		}
		var c [16]byte
		for b := padded; len(b) > 0; b = b[16:] {
			for i := range c {
				c[i] ^= b[i]
			}
			kmscrypto.V4Cipher().EncryptBlock(c[:], c[:])
		}
		if got := kmscrypto.V4MAC(msg[:l]); got != c {
			t.Fatalf("V4MAC of %d bytes = %x, want %x", l, got, c)
		}
	}
}

// TestRoundTrip checks D(E(x)) == x for random blocks and CBC buffers.
func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	for _, c := range []*kmscrypto.Cipher{kmscrypto.V5(), kmscrypto.V6()} {
		for range 1000 {
			var x, y [16]byte
			fill(rng, x[:])
			c.EncryptBlock(y[:], x[:])
			c.DecryptBlock(y[:], y[:])
			if x != y {
				t.Fatalf("block round trip of %x gave %x", x, y)
			}
		}
		for n := 16; n <= 320; n += 16 {
			var iv [16]byte
			fill(rng, iv[:])
			pt := make([]byte, n)
			fill(rng, pt)
			buf := append([]byte{}, pt...)
			c.CBCEncrypt(&iv, buf)
			c.CBCDecrypt(&iv, buf)
			if !bytes.Equal(buf, pt) {
				t.Fatalf("CBC round trip of %d bytes failed", n)
			}
		}
	}
}

func fill(rng *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
}

// TestV5MatchesStdlib checks that V5 is standard AES-128 (§5.1) by comparing
// with crypto/aes, block by block and in CBC mode.
func TestV5MatchesStdlib(t *testing.T) {
	ref, err := aes.NewCipher(unhex(t, "cd7e796f2ab25dcb55ffc8ef8364c470"))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewChaCha8([32]byte{2}))
	for range 1000 {
		var x, got, want [16]byte
		fill(rng, x[:])
		kmscrypto.V5().EncryptBlock(got[:], x[:])
		ref.Encrypt(want[:], x[:])
		if got != want {
			t.Fatalf("E_V5(%x) = %x, crypto/aes %x", x, got, want)
		}
		kmscrypto.V5().DecryptBlock(got[:], x[:])
		ref.Decrypt(want[:], x[:])
		if got != want {
			t.Fatalf("D_V5(%x) = %x, crypto/aes %x", x, got, want)
		}
	}
	// CBC: C_i = E(P_i xor C_{i-1}).
	var iv [16]byte
	fill(rng, iv[:])
	pt := make([]byte, 240)
	fill(rng, pt)
	got := append([]byte{}, pt...)
	kmscrypto.V5().CBCEncrypt(&iv, got)
	prev := iv
	for i := 0; i < len(pt); i += 16 {
		var blk [16]byte
		for j := range blk {
			blk[j] = pt[i+j] ^ prev[j]
		}
		ref.Encrypt(prev[:], blk[:])
		if !bytes.Equal(got[i:i+16], prev[:]) {
			t.Fatalf("CBC block %d = %x, want %x", i/16, got[i:i+16], prev)
		}
	}
}

// TestForMajor checks the key choice of kms-messages.md §6.
func TestForMajor(t *testing.T) {
	for _, tt := range []struct {
		major uint16
		want  *kmscrypto.Cipher
	}{{4, kmscrypto.V5()}, {5, kmscrypto.V5()}, {6, kmscrypto.V6()}, {7, kmscrypto.V6()}} {
		if got := kmscrypto.ForMajor(tt.major); got != tt.want {
			t.Errorf("ForMajor(%d) is the wrong cipher", tt.major)
		}
	}
	if kmscrypto.V5() == kmscrypto.V6() {
		t.Error("V5() == V6()")
	}
}

// TestPKCS7 checks kms-messages.md §5.4.
func TestPKCS7(t *testing.T) {
	for l := 0; l <= 48; l++ {
		in := bytes.Repeat([]byte{0xAA}, l)
		p := kmscrypto.PadPKCS7(append([]byte{}, in...))
		n := 16 - l%16
		if len(p) != l+n || !bytes.Equal(p[l:], bytes.Repeat([]byte{byte(n)}, n)) {
			t.Fatalf("PadPKCS7(%d bytes) = %x", l, p)
		}
		u, err := kmscrypto.UnpadPKCS7(p)
		if err != nil || !bytes.Equal(u, in) {
			t.Fatalf("UnpadPKCS7(PadPKCS7(%d bytes)) = %x, %v", l, u, err)
		}
	}
	block := func(tail ...byte) []byte {
		return append(bytes.Repeat([]byte{0xAA}, 16-len(tail)), tail...)
	}
	bad := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"short", []byte{1}},
		{"not multiple", append(block(1), 1)},
		{"zero", block(0)},
		{"seventeen", block(17)},
		{"unequal", block(3, 2, 3)},
		{"sixteen unequal", append([]byte{0x0f}, bytes.Repeat([]byte{16}, 15)...)},
	}
	for _, tt := range bad {
		if _, err := kmscrypto.UnpadPKCS7(tt.in); !errors.Is(err, kmscrypto.ErrPadding) {
			t.Errorf("UnpadPKCS7(%s) error = %v, want ErrPadding", tt.name, err)
		}
	}
	if u, err := kmscrypto.UnpadPKCS7(bytes.Repeat([]byte{16}, 16)); err != nil || len(u) != 0 {
		t.Errorf("UnpadPKCS7(16 x 0x10) = %x, %v", u, err)
	}
}

// TestHMACKey checks kms-messages.md §8 and kms-examples.md §1, §4.8.
func TestHMACKey(t *testing.T) {
	// Variables, not constants, so that the arithmetic wraps mod 2^64.
	var c1, c2, c3 uint64 = 0x00000022816889BD, 0x000000208CBAB5ED, 0x3156CD5AC628477A
	var seedExample uint64 = 0x3319379b820ff6a5 // §8: S for T = 134398408620000000
	maxT := ^uint64(0)
	fromSeed := func(s uint64) string {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], s)
		h := sha256.Sum256(b[:])
		return hex.EncodeToString(h[16:])
	}
	tests := []struct {
		time uint64
		t    int
		want string
	}{
		{0, 0, "ac0c6f55aa8cabc264c0642eb961540a"},
		{134398408620000000, 0, "50fd4b414706fc8c05c8c2bdb457a067"},
		{134398342450000000, 0, "50fd4b414706fc8c05c8c2bdb457a067"},
		{134398408620000000, -1, fromSeed(seedExample - c1)},
		{134398408620000000, +1, fromSeed(seedExample + c1)},
		{0, -1, fromSeed(c3 - c1)},
		{maxT, 1, fromSeed(maxT/c1*c2 + c3 + c1)},
	}
	for _, tt := range tests {
		if got := kmscrypto.HMACKey(tt.time, tt.t); hex.EncodeToString(got[:]) != tt.want {
			t.Errorf("HMACKey(%d, %d) = %x, want %s", tt.time, tt.t, got, tt.want)
		}
	}
}

// TestHMAC16 compares HMAC16 with crypto/hmac on both sides of its
// stack-buffer limit.
func TestHMAC16(t *testing.T) {
	rng := rand.New(rand.NewChaCha8([32]byte{3}))
	for _, n := range []int{0, 1, 55, 56, 63, 64, 65, 232, 260, 447, 448, 449, 1000} {
		var key [16]byte
		fill(rng, key[:])
		msg := make([]byte, n)
		fill(rng, msg)
		m := hmac.New(sha256.New, key[:])
		m.Write(msg)
		want := m.Sum(nil)[16:]
		if got := kmscrypto.HMAC16(key, msg); !bytes.Equal(got[:], want) {
			t.Errorf("HMAC16 of %d bytes = %x, want %x", n, got, want)
		}
	}
}

// TestSaltHash checks the Random/Hash pairs of kms-examples.md §3.8 and §4.8.
func TestSaltHash(t *testing.T) {
	tests := []struct{ r, h string }{
		{"a682f0d465f5e4a312a373f1154ac9c3", "faf219eb9bc16a97c0baaac3f3e1206defba5183ad2985977bedef37ed0412b6"},
		{"7ff3aac2e516d3f9ac5dd7a36b9516dd", "0025fad4597671968763289fb0c122afcf89c47468d8b263d91133b2497a3489"},
	}
	for _, tt := range tests {
		r := [16]byte(unhex(t, tt.r))
		if got := kmscrypto.SaltHash(&r); hex.EncodeToString(got[:]) != tt.h {
			t.Errorf("SaltHash(%s) = %x, want %s", tt.r, got, tt.h)
		}
	}
}

// TestNoAllocs checks that the per-activation operations do not allocate.
func TestNoAllocs(t *testing.T) {
	var msg [300]byte
	var buf [240]byte
	var iv, blk, key [16]byte
	var hmsg [232]byte
	checks := map[string]func(){
		"V4MAC":      func() { _ = kmscrypto.V4MAC(msg[:]) },
		"CBCEncrypt": func() { kmscrypto.V6().CBCEncrypt(&iv, buf[:]) },
		"CBCDecrypt": func() { kmscrypto.V6().CBCDecrypt(&iv, buf[:]) },
		"Encrypt":    func() { kmscrypto.ForMajor(5).EncryptBlock(blk[:], blk[:]) },
		"Decrypt":    func() { kmscrypto.ForMajor(6).DecryptBlock(blk[:], blk[:]) },
		"HMACKey":    func() { key = kmscrypto.HMACKey(134398408620000000, 0) },
		"HMAC16":     func() { _ = kmscrypto.HMAC16(key, hmsg[:]) },
		"SaltHash":   func() { _ = kmscrypto.SaltHash(&blk) },
	}
	for name, f := range checks {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocations per call, want 0", name, n)
		}
	}
}

// vectorDir locates the recorded traffic (shared/testdata/vectors), or
// returns "" when it is absent.
func vectorDir() string {
	if d := os.Getenv("KMSD_VECTORS"); d != "" {
		return d
	}
	for _, d := range []string{"../../../shared/testdata/vectors", "/work/shared/testdata/vectors"} {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return d
		}
	}
	return ""
}

type vectorFile struct {
	Exchanges []struct {
		Request  string `json:"kms_request_hex"`
		Response string `json:"kms_response_hex"`
	} `json:"exchanges"`
}

// TestVectors recomputes every MAC, hash and HMAC of the recorded vlmcs ↔
// vlmcsd exchanges (kms-messages.md §4, §6–§8; kms-examples.md §2–§4).
func TestVectors(t *testing.T) {
	dir := vectorDir()
	if dir == "" {
		t.Skip("vector directory absent; set KMSD_VECTORS")
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Skipf("no vectors in %s (%v)", dir, err)
	}
	counts := map[string]int{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var vf vectorFile
		if err := json.Unmarshal(data, &vf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for i, ex := range vf.Exchanges {
			name := fmt.Sprintf("%s#%d", filepath.Base(f), i)
			req, resp := unhex(t, ex.Request), unhex(t, ex.Response)
			checkExchange(t, name, req, resp, counts)
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("%-28s %d", k, counts[k])
	}
	for _, k := range []string{"v4 request MAC", "v4 response MAC", "v5 request", "v6 request",
		"v5 response hash", "v6 response hash", "v6 response XoredIVs", "v6 response HMAC"} {
		if counts[k] == 0 {
			t.Errorf("check %q never ran", k)
		}
	}
}

func checkExchange(t *testing.T, name string, req, resp []byte, counts map[string]int) {
	t.Helper()
	if len(req) < 4 || binary.LittleEndian.Uint16(req) != 0 {
		return
	}
	switch major := binary.LittleEndian.Uint16(req[2:]); {
	case major == 4 && len(req) == 252:
		if mac := kmscrypto.V4MAC(req[:236]); !bytes.Equal(mac[:], req[236:252]) {
			t.Errorf("%s: V4 request MAC %x, recorded %x", name, mac, req[236:252])
		}
		counts["v4 request MAC"]++
		checkV4Response(t, name, resp, counts)
	case (major == 5 || major == 6) && len(req) == 260:
		c := kmscrypto.ForMajor(major)
		reqIV := [16]byte(req[4:20])
		plain := append([]byte{}, req[20:260]...)
		c.CBCDecrypt(&reqIV, plain)
		if !bytes.Equal(plain[236:], []byte{4, 4, 4, 4}) || binary.LittleEndian.Uint16(plain[2:]) != major {
			t.Errorf("%s: V%d request decrypted to %x", name, major, plain)
		}
		counts[label(major, "request")]++
		var div [16]byte
		c.DecryptBlock(div[:], reqIV[:])
		checkV56Response(t, name, &reqIV, &div, resp, counts)
	}
}

func label(major uint16, s string) string { return fmt.Sprintf("v%d %s", major, s) }

func checkV4Response(t *testing.T, name string, resp []byte, counts map[string]int) {
	if len(resp) < 60 || binary.LittleEndian.Uint16(resp[2:]) != 4 {
		return
	}
	p := int(binary.LittleEndian.Uint32(resp[4:]))
	if 60+p > len(resp) {
		t.Errorf("%s: V4 response of %d bytes has P = %d", name, len(resp), p)
		return
	}
	if mac := kmscrypto.V4MAC(resp[:44+p]); !bytes.Equal(mac[:], resp[44+p:60+p]) {
		t.Errorf("%s: V4 response MAC %x, recorded %x", name, mac, resp[44+p:60+p])
	}
	counts["v4 response MAC"]++
}

func checkV56Response(t *testing.T, name string, reqIV, div *[16]byte, resp []byte, counts map[string]int) {
	if len(resp) < 36 {
		return
	}
	major := binary.LittleEndian.Uint16(resp[2:])
	c := kmscrypto.ForMajor(major)
	respIV := [16]byte(resp[4:20])
	buf := append([]byte{}, resp[20:]...)
	c.CBCDecrypt(&respIV, buf)
	plain, err := kmscrypto.UnpadPKCS7(buf)
	if err != nil {
		t.Errorf("%s: V%d response padding: %v", name, major, err)
		return
	}
	counts[label(major, "response unpad")]++
	p := int(binary.LittleEndian.Uint32(plain[4:]))
	want := 92 + p
	if major > 5 {
		want = 132 + p
	}
	if len(plain) != want {
		t.Errorf("%s: V%d response plaintext %d bytes, want %d", name, major, len(plain), want)
		return
	}
	var r [16]byte
	for i := range r {
		r[i] = plain[44+p+i] ^ div[i]
	}
	if h := kmscrypto.SaltHash(&r); !bytes.Equal(h[:], plain[60+p:92+p]) {
		t.Errorf("%s: V%d response hash %x, recorded %x", name, major, h, plain[60+p:92+p])
	}
	counts[label(major, "response hash")]++
	if major == 5 {
		if respIV != *reqIV {
			t.Errorf("%s: V5 response IV %x differs from request IV %x", name, respIV, reqIV)
		}
		counts["v5 response IV"]++
		return
	}
	if !bytes.Equal(plain[100+p:116+p], div[:]) {
		t.Errorf("%s: V6 XoredIVs %x, DIV %x", name, plain[100+p:116+p], div)
	}
	counts["v6 response XoredIVs"]++
	var x [16]byte
	kmscrypto.V6().DecryptBlock(x[:], respIV[:])
	key := kmscrypto.HMACKey(binary.LittleEndian.Uint64(plain[24+p:]), 0)
	mac := kmscrypto.HMAC16(key, append(x[:], plain[:116+p]...))
	if !bytes.Equal(mac[:], plain[116+p:132+p]) {
		t.Errorf("%s: V6 HMAC %x, recorded %x", name, mac, plain[116+p:132+p])
	}
	counts["v6 response HMAC"]++
}

func BenchmarkV4MAC(b *testing.B) {
	var msg [236]byte
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		_ = kmscrypto.V4MAC(msg[:])
	}
}

func BenchmarkV6CBCDecrypt240(b *testing.B) {
	var iv [16]byte
	var buf [240]byte
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		kmscrypto.V6().CBCDecrypt(&iv, buf[:])
	}
}

func BenchmarkV6Encrypt(b *testing.B) {
	var blk [16]byte
	c := kmscrypto.V6()
	b.SetBytes(kmscrypto.BlockSize)
	b.ReportAllocs()
	for b.Loop() {
		c.EncryptBlock(blk[:], blk[:])
	}
}

func BenchmarkV6Decrypt(b *testing.B) {
	var blk [16]byte
	c := kmscrypto.V6()
	b.SetBytes(kmscrypto.BlockSize)
	b.ReportAllocs()
	for b.Loop() {
		c.DecryptBlock(blk[:], blk[:])
	}
}

func BenchmarkHMACKey(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = kmscrypto.HMACKey(134398408620000000, 0)
	}
}

func BenchmarkHMAC16(b *testing.B) {
	var key [16]byte
	var msg [232]byte
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		_ = kmscrypto.HMAC16(key, msg[:])
	}
}
