package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
	"time"
	"unicode/utf16"

	"kmsd/internal/wire"
)

func TestGUID(t *testing.T) {
	// kms-protocol.md §2: the KMS interface on the wire.
	g, err := wire.ParseGUID("51c82175-844e-4750-b0d8-ec255555bc06")
	want := []byte{0x75, 0x21, 0xc8, 0x51, 0x4e, 0x84, 0x50, 0x47, 0xb0, 0xd8, 0xec, 0x25, 0x55, 0x55, 0xbc, 0x06}
	if err != nil || !bytes.Equal(g[:], want) || g.String() != "51c82175-844e-4750-b0d8-ec255555bc06" {
		t.Fatalf("%x %v", g, err)
	}
	if b, err := wire.ParseGUID("{51C82175-844E-4750-B0D8-EC255555BC06}"); err != nil || b != g {
		t.Errorf("braces/upper case: %v %v", b, err)
	}
	for _, bad := range []string{"", "51c82175844e4750b0d8ec255555bc06", "51c82175-844e-4750-b0d8-ec255555bc0g", "51c82175-844e-4750-b0d8ec255555bc06-"} {
		if _, err := wire.ParseGUID(bad); !errors.Is(err, wire.ErrBadGUID) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestFileTime(t *testing.T) {
	// 2026-11-22 15:17:25 UTC, as recorded in v6-win10-pro.
	ft := wire.FileTimeSeconds(1795360645)
	if wire.UnixSeconds(ft) != 1795360645 || !wire.Time(ft).Equal(time.Unix(1795360645, 0)) {
		t.Errorf("round trip of %d", ft)
	}
	if wire.FileTime(time.Unix(0, 0)) != 116444736000000000 {
		t.Errorf("Unix epoch is %d", wire.FileTime(time.Unix(0, 0)))
	}
}

func TestUTF16(t *testing.T) {
	var field [128]byte
	long := "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	if n := wire.PutUTF16(field[:], long); n != 63 || len(wire.UTF16String(field[:])) != 63 {
		t.Errorf("truncation kept %d units", n)
	}
	for _, s := range []string{"Prüfstand-Ωmega.例え.test", "emoji 😀 pair", ""} {
		wire.PutUTF16(field[:], s)
		if got := wire.UTF16String(field[:]); got != s {
			t.Errorf("%q came back as %q", s, got)
		}
		if got := wire.UTF16String(wire.AppendUTF16Z(nil, s)); got != s {
			t.Errorf("AppendUTF16Z %q: %q", s, got)
		}
	}
	if wire.UTF16Len("a😀") != 3 {
		t.Error("UTF16Len counts surrogate pairs as two units")
	}
}

func TestReaderSticky(t *testing.T) {
	r := wire.NewReader([]byte{1, 2, 3})
	if r.U16() != 0x0201 || r.U32() != 0 || !errors.Is(r.Err(), wire.ErrShort) || r.U8() != 0 {
		t.Error("reader error is not sticky")
	}
}

// TestUTF16StringMatchesDecode compares UTF16String with the standard
// library's decoding (up to the first NUL unit) on 20,000 pseudo-random
// inputs rich in surrogates, NULs and odd lengths.
func TestUTF16StringMatchesDecode(t *testing.T) {
	ref := func(b []byte) string {
		var units []uint16
		for i := 0; i+1 < len(b); i += 2 {
			u := binary.LittleEndian.Uint16(b[i:])
			if u == 0 {
				break
			}
			units = append(units, u)
		}
		return string(utf16.Decode(units))
	}
	pool := []uint16{0, 'a', 'Z', 0x00e9, 0x4e2d, 0xd800, 0xdbff, 0xdc00, 0xdfff, 0xd83d, 0xde00, 0xfffd, 0xffff}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		b := make([]byte, rng.IntN(300))
		for i := 0; i+1 < len(b); i += 2 {
			u := pool[rng.IntN(len(pool))]
			if rng.IntN(8) == 0 {
				u = uint16(rng.Uint32())
			}
			binary.LittleEndian.PutUint16(b[i:], u)
		}
		if got, want := wire.UTF16String(b), ref(b); got != want {
			t.Fatalf("UTF16String(% x) = %q, want %q", b, got, want)
		}
	}
}
